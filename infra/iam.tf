# One role per function, with only the actions and resources that function uses (see README).
data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each           = local.functions
  name               = "${var.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

# Actions are spelled out per statement so that tests/infra_consistency.py can compare them with the README.
locals {
  table_and_idx = [aws_dynamodb_table.periods.arn, "${aws_dynamodb_table.periods.arn}/index/by_set"]
}

data "aws_iam_policy_document" "ingest" {
  statement {
    sid       = "WriteEvents"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.events.arn}/events/*", "${aws_s3_bucket.events.arn}/quarantine/*", "${aws_s3_bucket.events.arn}/_state/touched/*"]
  }
  statement {
    sid       = "ConsumeQueue"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.events.arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["ingest"].arn}:*"]
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.tally.arn]
  }
  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"] # X-Ray actions take no resource
  }
}

data "aws_iam_policy_document" "rollup" {
  statement {
    sid       = "ListLake"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.events.arn]
  }
  statement {
    sid       = "ReadWriteLake"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.events.arn}/events/*", "${aws_s3_bucket.events.arn}/_state/*", "${aws_s3_bucket.events.arn}/_catalog/*"]
  }
  statement {
    sid = "FindRetiredRows"
    # Lists a replaced metric version's rows through the index to delete them; nothing stored
    # derives from this read, and the version has had no writes since it was replaced.
    actions   = ["dynamodb:Query"]
    resources = ["${aws_dynamodb_table.periods.arn}/index/by_set"]
  }
  statement {
    sid = "PeriodTable"
    # Writes rows and reads only its meta items and its job lease (consistently): no stored number
    # comes from a read of the table or its index (docs/consistency.md), so Query is not granted.
    # The lease is claimed with a conditional PutItem and released with a DeleteItem.
    actions   = ["dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem"]
    resources = [aws_dynamodb_table.periods.arn]
  }
  statement {
    sid       = "SendShardJobs"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.rollup_shards.arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["rollup"].arn}:*"]
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.tally.arn]
  }
  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"] # X-Ray actions take no resource
  }
}

data "aws_iam_policy_document" "rollup_shards" {
  statement {
    sid = "ListLake"
    # Without ListBucket a missing object is a 403, not a 404: a shard of a plan that was
    # merged or compacted away must see it gone.
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.events.arn]
  }
  statement {
    sid       = "ReadEvents"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.events.arn}/events/*", "${aws_s3_bucket.events.arn}/_state/shards/*"]
  }
  statement {
    sid       = "WriteParts"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.events.arn}/_state/shards/*"]
  }
  statement {
    sid       = "ConsumeShardQueue"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.rollup_shards.arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["rollup_shards"].arn}:*"]
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.tally.arn]
  }
  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"] # X-Ray actions take no resource
  }
}

data "aws_iam_policy_document" "api" {
  statement {
    sid = "ListCatalog"
    # Without ListBucket, S3 answers a missing object with 403 instead of 404 (a lake not yet
    # rolled up has no _catalog/live.json).
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.events.arn]
  }
  statement {
    sid       = "ReadCatalog"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.events.arn}/_catalog/*"]
  }
  statement {
    sid       = "ReadPeriods"
    actions   = ["dynamodb:BatchGetItem", "dynamodb:Query"]
    resources = local.table_and_idx
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["api"].arn}:*"]
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.tally.arn]
  }
  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"] # X-Ray actions take no resource
  }
}

locals {
  function_policies = {
    ingest        = data.aws_iam_policy_document.ingest.json
    rollup        = data.aws_iam_policy_document.rollup.json
    rollup_shards = data.aws_iam_policy_document.rollup_shards.json
    api           = data.aws_iam_policy_document.api.json
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions
  name     = "${var.name}-${each.key}"
  role     = aws_iam_role.function[each.key].id
  policy   = local.function_policies[each.key]
}
