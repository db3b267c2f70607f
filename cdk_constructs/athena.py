"""An Athena-queryable Glue table over the results bucket: one row per record, partitioned by run and benchmark.

The partitions are registered in Glue, one per run and benchmark (rackform/cli/athena.py registers a run's before
querying it), not projected: partition projection computes partitions from the query, and a run id is neither an
enum, an integer nor a date, so it could only be `injected`, which Athena accepts only when every query names each
run with `=` or `IN` (https://docs.aws.amazon.com/athena/latest/ug/partition-projection-supported-types.html): such a
table can fetch known runs but cannot list runs or query across them. Registered partitions take any predicate,
and Athena reads only the partitions it matches (https://docs.aws.amazon.com/athena/latest/ug/partitions.html).
Each partition's location is a run's records of one benchmark (workloads/layout.records_prefix), a folder that holds
records only.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_s3 as s3
from constructs import Construct

from workloads.layout import PARTITION_KEYS, RESULTS_PREFIX, table_columns
from workloads.results import ResultRecord

JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
TEXT_INPUT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
# From the record model itself: a field added to ResultRecord is a column the next deploy adds.
COLUMNS: tuple[tuple[str, str], ...] = table_columns(ResultRecord)
# The table's name comes from its partition keys, and its logical ID from its name, so that a change of keys replaces
# the table. CloudFormation changes every TableInput field in place, PartitionKeys and Name alike (no interruption, a
# Glue UpdateTable; only DatabaseName and CatalogId replace the table:
# https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-glue-table-tableinput.html),
# which would keep the partitions registered under the old keys: Glue holds a partition's values by position and
# cannot change them (UpdatePartition: delete and recreate it,
# https://docs.aws.amazon.com/glue/latest/webapi/API_UpdatePartition.html), and Athena refuses a query whose partitions
# no longer match the table (https://docs.aws.amazon.com/athena/latest/ug/updates-and-partitions.html). A new logical
# ID is a replacement: CloudFormation creates the resource under the new ID, then deletes the old one
# (https://docs.aws.amazon.com/cdk/v2/guide/identifiers.html), whose partitions Glue
# deletes with it (https://docs.aws.amazon.com/glue/latest/webapi/API_DeleteTable.html); the new name lets both exist
# in between. Readers take the name from the storage stack's ResultsTableName output.
TABLE_NAME = "_".join(("results_by", *PARTITION_KEYS))


class ResultsTable(Construct):
    """Glue database `database_name` with table TABLE_NAME, partitioned by PARTITION_KEYS. `ignore.malformed.json`
    turns a line that is no JSON (a damaged object) into an all-null row instead of failing every query, so filter on
    a non-null column (status).

    The OpenX SerDe reads one JSON document per line, which is why `ResultStore.put_record` writes records on one.
    """

    def __init__(self, scope: Construct, id: str, *, bucket: s3.IBucket, database_name: str,
                 table_name: str = TABLE_NAME) -> None:
        super().__init__(scope, id)
        account = Stack.of(self).account
        self.database = glue.CfnDatabase(
            self, "Database", catalog_id=account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=database_name, description="rackform benchmark results (Athena)"))
        self.table = glue.CfnTable(
            self, f"Table_{table_name}", catalog_id=account, database_name=database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=table_name,
                description="one row per results/<run>/Records/<benchmark>/<rack>/<node group>/record.json",
                table_type="EXTERNAL_TABLE",
                partition_keys=[glue.CfnTable.ColumnProperty(name=k, type="string") for k in PARTITION_KEYS],
                parameters={"classification": "json"},
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    columns=[glue.CfnTable.ColumnProperty(name=n, type=t) for n, t in COLUMNS],
                    location=f"s3://{bucket.bucket_name}/{RESULTS_PREFIX}/",
                    input_format=TEXT_INPUT,
                    output_format=TEXT_OUTPUT,
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library=JSON_SERDE,
                        parameters={"ignore.malformed.json": "true"},
                    ),
                ),
            ),
        )
        self.table.add_resource_dependency(self.database)
        self.database_name = database_name
        self.table_name = table_name
