locals {
  functions = {
    ingest = {
      artifact    = "ingest"
      memory      = var.ingest_memory_mb
      timeout     = var.ingest_timeout_seconds
      concurrency = var.ingest_reserved_concurrency
      environment = {
        TALLY_BUCKET = aws_s3_bucket.events.bucket
      }
    }
    rollup = {
      artifact    = "rollup"
      memory      = var.rollup_memory_mb
      timeout     = var.rollup_timeout_seconds
      concurrency = 1 # one rollup at a time here; the job lease keeps it so for any other caller too
      environment = {
        TALLY_BUCKET          = aws_s3_bucket.events.bucket
        TALLY_TABLE           = aws_dynamodb_table.periods.name
        TALLY_REPORTING_TZ    = var.reporting_tz
        TALLY_SHARD_MB        = var.rollup_shard_mb
        TALLY_SHARD_QUEUE_URL = aws_sqs_queue.rollup_shards.url
      }
    }
    # The same binary as the shard queue's worker: an hour larger than TALLY_SHARD_MB of event
    # files is computed by as many of these in parallel, each writing partial states to S3 that
    # the next scheduled rollup merges. It takes no lease and writes no period row.
    rollup_shards = {
      artifact    = "rollup"
      memory      = var.rollup_memory_mb
      timeout     = var.rollup_shard_timeout_seconds
      concurrency = var.rollup_shard_concurrency
      environment = {
        TALLY_BUCKET       = aws_s3_bucket.events.bucket
        TALLY_TABLE        = aws_dynamodb_table.periods.name
        TALLY_REPORTING_TZ = var.reporting_tz
        TALLY_SHARD_MB     = var.rollup_shard_mb
      }
    }
    api = {
      artifact    = "api"
      memory      = var.api_memory_mb
      timeout     = 10
      concurrency = var.api_reserved_concurrency
      environment = {
        TALLY_BUCKET       = aws_s3_bucket.events.bucket
        TALLY_TABLE        = aws_dynamodb_table.periods.name
        TALLY_REPORTING_TZ = var.reporting_tz
        TALLY_CORS_ORIGIN  = var.cors_origin
        # The console's sign-in (authorization code with PKCE); empty leaves it asking for a token.
        TALLY_OIDC_AUTHORIZE_URL = var.console_oidc_authorize_url
        TALLY_OIDC_TOKEN_URL     = var.console_oidc_token_url
        TALLY_OIDC_CLIENT_ID     = var.console_oidc_client_id
      }
    }
  }
}

resource "aws_cloudwatch_log_group" "function" {
  for_each          = local.functions
  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.tally.arn
}

resource "aws_lambda_function" "function" {
  #checkov:skip=CKV_AWS_116:ingest's and rollup_shards' failures go to their queues' DLQs, rollup's to the scheduler's DLQ; api is synchronous
  #checkov:skip=CKV_AWS_117:the functions reach only AWS APIs under IAM; a VPC would add NAT cost and cold-start time
  #checkov:skip=CKV_AWS_272:zips come from this repository's make package; add a code signing config where policy requires it
  for_each                       = local.functions
  function_name                  = "${var.name}-${each.key}"
  role                           = aws_iam_role.function[each.key].arn
  runtime                        = "provided.al2023"
  architectures                  = ["arm64"]
  handler                        = "bootstrap"
  filename                       = "${var.lambda_zip_dir}/tally-${each.value.artifact}/bootstrap.zip"
  source_code_hash               = filebase64sha256("${var.lambda_zip_dir}/tally-${each.value.artifact}/bootstrap.zip")
  memory_size                    = each.value.memory
  timeout                        = each.value.timeout
  reserved_concurrent_executions = each.value.concurrency
  kms_key_arn                    = aws_kms_key.tally.arn

  environment {
    variables = each.value.environment
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.function[each.key].name
  }

  tracing_config {
    mode = "Active"
  }

  depends_on = [aws_cloudwatch_log_group.function]
}

resource "aws_lambda_event_source_mapping" "ingest" {
  event_source_arn                   = aws_sqs_queue.events.arn
  function_name                      = aws_lambda_function.function["ingest"].arn
  batch_size                         = var.ingest_batch_size
  maximum_batching_window_in_seconds = var.ingest_batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.ingest_maximum_concurrency
  }
}

resource "aws_lambda_event_source_mapping" "rollup_shards" {
  event_source_arn        = aws_sqs_queue.rollup_shards.arn
  function_name           = aws_lambda_function.function["rollup_shards"].arn
  batch_size              = 1 # one shard is one piece of work: its memory is the budget
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.rollup_shard_concurrency
  }
}
