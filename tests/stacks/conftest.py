"""What the stacks' template gates share."""

# cfn-lint warnings we accept, with the reason; anything else fails the lint tests (test_stacks, test_gates).
ACCEPTED_LINT_WARNINGS = {"W3010": "the AZ is hardcoded on purpose: EFA and placement groups live in one AZ"}
