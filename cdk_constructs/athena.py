"""An Athena-queryable Glue table over the results bucket: one row per record.json, partitioned the way the keys are.

Partition projection computes partition locations from the query instead of a crawler or MSCK REPAIR: run ids, racks
and node groups are `injected` (unknown ahead, and rack names must not enter the storage stack, which stays unchanged
when racks change), so every query must name each of them with `=` or `IN`; benchmark is an `enum` of the catalog's
names, so a query may leave it out.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def location_template(bucket_name: str) -> str:
    keys = "/".join(f"${{{k}}}" for k in PARTITION_KEYS)
    return f"s3://{bucket_name}/{RESULTS_PREFIX}/{keys}/"


class ResultsTable(Construct):
    """Glue database `database_name` with table `results`. Node logs sit beside record.json under the same prefix
    and Athena reads every object under a partition's location: `ignore.malformed.json` turns their lines into
    all-null rows instead of query errors, so filter on a non-null column (status) or on "$path".

    The OpenX SerDe reads one JSON document per line, which is why `ResultStore.put_record` writes records on one.
    """

    def __init__(self, scope: Construct, id: str, *, bucket: s3.IBucket, database_name: str,
                 benchmarks: Sequence[str], table_name: str = "results") -> None:
        super().__init__(scope, id)
        account = Stack.of(self).account
        self.database = glue.CfnDatabase(
            self, "Database", catalog_id=account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=database_name, description="rackform benchmark results (Athena)"))
        self.table = glue.CfnTable(
            self, "Table", catalog_id=account, database_name=database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=table_name,
                description="one row per results/<run>/<rack>/<node group>/<benchmark>/record.json",
                table_type="EXTERNAL_TABLE",
                partition_keys=[glue.CfnTable.ColumnProperty(name=k, type="string") for k in PARTITION_KEYS],
                parameters={
                    "classification": "json",
                    "projection.enabled": "true",
                    "projection.run_id.type": "injected",
                    "projection.rack.type": "injected",
                    "projection.node_group.type": "injected",
                    "projection.benchmark.type": "enum",
                    "projection.benchmark.values": ",".join(benchmarks),
                    "storage.location.template": location_template(bucket.bucket_name),
                },
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
