"""What an AWS call asks IAM for: its (action, resource ARN) pairs and the condition keys it
carries, derived from the request's parameters as the service derives them.

    >>> authorization("s3", "GetObject", {"Bucket": "raw", "Key": "orders/a.csv"})
    [('s3:GetObject', 'arn:aws:s3:::raw/orders/a.csv')]
"""

from __future__ import annotations

from typing import Any

from sluice.aws.account import ACCOUNT_ID, REGION, queue_arn

# S3: Service Authorization Reference, "Actions, resources, and condition keys for Amazon S3"
# (its "API operations" table). Glue: "Specifying AWS Glue resource ARNs" (a catalog call needs
# the catalog, the database and the table). DynamoDB: "IAM policy to grant access to a specific
# DynamoDB table and its indexes" (a Query or Scan of an index is authorised on .../index/NAME).
_S3_OBJECT = {"GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
              "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject",
              "CompleteMultipartUpload": "s3:PutObject", "DeleteObject": "s3:DeleteObject",
              "AbortMultipartUpload": "s3:AbortMultipartUpload", "ListParts": "s3:ListMultipartUploadParts"}
_S3_VERSIONED = {"s3:GetObject": "s3:GetObjectVersion", "s3:DeleteObject": "s3:DeleteObjectVersion"}
_S3_BUCKET = {"ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket", "HeadBucket": "s3:ListBucket",
              "ListObjectVersions": "s3:ListBucketVersions", "GetBucketLocation": "s3:GetBucketLocation",
              "ListMultipartUploads": "s3:ListBucketMultipartUploads"}
_DYNAMODB_TABLE = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "DescribeTable",
                   "ConditionCheckItem"}
_GLUE_CRAWLER = {"StartCrawler": "Name", "GetCrawler": "Name", "StopCrawler": "Name",
                 "ListCrawls": "CrawlerName"}
_GLUE_JOB = {"StartJobRun", "GetJob", "GetJobRun", "GetJobRuns", "BatchStopJobRun", "GetJobBookmark"}
_GLUE_TABLE = {"GetTable", "DeleteTable", "CreateTable", "UpdateTable", "GetPartition", "GetPartitions",
               "CreatePartition", "UpdatePartition", "BatchCreatePartition", "BatchDeletePartition",
               "BatchUpdatePartition", "BatchGetPartition"}
_SQS_BATCH = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
              "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}
_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
             "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}


def _s3(operation: str, p: dict[str, Any]) -> list[tuple[str, str]] | None:
    bucket = f"arn:aws:s3:::{p.get('Bucket', '')}"
    if operation in _S3_OBJECT:
        action = _S3_OBJECT[operation]
        return [(_S3_VERSIONED.get(action, action) if p.get("VersionId") else action,
                 f"{bucket}/{p['Key']}")]
    if operation in _S3_BUCKET:
        return [(_S3_BUCKET[operation], bucket)]
    if operation == "DeleteObjects":
        return [("s3:DeleteObjectVersion" if o.get("VersionId") else "s3:DeleteObject",
                 f"{bucket}/{o['Key']}") for o in p["Delete"]["Objects"]]
    if operation == "CopyObject":
        source = p["CopySource"]
        source = source if isinstance(source, str) else f"{source['Bucket']}/{source['Key']}"
        return [("s3:GetObject", f"arn:aws:s3:::{source.lstrip('/').split('?')[0]}"),
                ("s3:PutObject", f"{bucket}/{p['Key']}")]
    if operation == "ListBuckets":
        return [("s3:ListAllMyBuckets", "*")]
    return None


def _dynamodb(operation: str, p: dict[str, Any], account: str, region: str
              ) -> list[tuple[str, str]] | None:
    def table(name: str) -> str:
        return name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{name}"

    if operation in _DYNAMODB_TABLE:
        index = f"/index/{p['IndexName']}" if p.get("IndexName") else ""
        return [(f"dynamodb:{operation}", table(p["TableName"]) + index)]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [(f"dynamodb:{operation}", table(name)) for name in p["RequestItems"]]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        return [(f"dynamodb:{_TRANSACT[kind]}", table(body["TableName"]))
                for item in p["TransactItems"] for kind, body in item.items()]
    return None


def _glue(operation: str, p: dict[str, Any], account: str, region: str
          ) -> list[tuple[str, str]] | None:
    arn = f"arn:aws:glue:{region}:{p.get('CatalogId') or account}"
    if operation in _GLUE_CRAWLER:
        return [(f"glue:{operation}", f"{arn}:crawler/{p[_GLUE_CRAWLER[operation]]}")]
    if operation in _GLUE_JOB:
        return [(f"glue:{operation}", f"{arn}:job/{p['JobName']}")]
    database = p.get("DatabaseName") or p.get("Name") or p.get("DatabaseInput", {}).get("Name", "")
    catalog = [f"{arn}:catalog", f"{arn}:database/{database}"]
    if operation in ("GetDatabase", "CreateDatabase"):
        tables = []
    elif operation == "GetTables":
        tables = [f"{arn}:table/{database}/*"]
    elif operation in _GLUE_TABLE:
        name = p.get("TableName") or p.get("Name") or p["TableInput"]["Name"]
        tables = [f"{arn}:table/{database}/{name}"]
    else:
        return None
    return [(f"glue:{operation}", resource) for resource in catalog + tables]


def authorization(service: str, operation: str, params: dict[str, Any], account: str = ACCOUNT_ID,
                  region: str = REGION) -> list[tuple[str, str]]:
    """The (action, resource ARN) pairs IAM checks for one API call; an operation not mapped
    here is checked as `service:Operation` on "*" (and the audit lists it as unmapped).

        >>> authorization("dynamodb", "Query", {"TableName": "ledger", "IndexName": "ByRun"})
        [('dynamodb:Query', 'arn:aws:dynamodb:us-east-1:123456789012:table/ledger/index/ByRun')]
    """
    found = mapped(service, operation, params, account, region)
    return [(f"{service}:{operation}", "*")] if found is None else found


def mapped(service: str, operation: str, p: dict[str, Any], account: str, region: str
            ) -> list[tuple[str, str]] | None:
    if service == "s3":
        return _s3(operation, p)
    if service == "dynamodb":
        return _dynamodb(operation, p, account, region)
    if service == "glue":
        return _glue(operation, p, account, region)
    if service == "sqs" and "QueueUrl" in p:
        return [(f"sqs:{_SQS_BATCH.get(operation, operation)}", queue_arn(p["QueueUrl"], region))]
    if service == "sns" and operation == "Publish":
        return [("sns:Publish", p.get("TopicArn") or p["TargetArn"])]
    if service == "events" and operation == "PutEvents":
        buses = {e.get("EventBusName") or "default" for e in p["Entries"]}
        return [("events:PutEvents", b if b.startswith("arn:") else
                 f"arn:aws:events:{region}:{account}:event-bus/{b}") for b in sorted(buses)]
    if service == "cloudwatch" and operation == "PutMetricData":
        return [("cloudwatch:PutMetricData", "*")]  # no resource-level scope in IAM
    if service == "athena" and "WorkGroup" in p:  # Athena user guide, "Workgroup example policies"
        return [(f"athena:{operation}", f"arn:aws:athena:{region}:{account}:workgroup/{p['WorkGroup']}")]
    if service == "sts" and operation == "GetCallerIdentity":
        return []  # needs no permission
    return None


def request_keys(service: str, operation: str, params: dict[str, Any]) -> dict[str, str | list[str]]:
    """Condition keys a request carries in its parameters."""
    if service == "dynamodb" and (leading := _leading_keys(operation, params)) is not None:
        return {"dynamodb:LeadingKeys": leading}
    if service == "events" and operation == "PutEvents":  # EventBridge user guide, "Using IAM policy
        # conditions": events:source and events:detail-type, one value per entry of the call
        entries = params.get("Entries", [])
        return {"events:source": sorted({e.get("Source", "") for e in entries}),
                "events:detail-type": sorted({e.get("DetailType", "") for e in entries})}
    if service == "cloudwatch" and operation == "PutMetricData":
        return {"cloudwatch:namespace": params.get("Namespace", "")}
    if service == "s3" and operation in ("ListObjectsV2", "ListObjects"):
        return {"s3:prefix": params.get("Prefix", "")}
    return {}


def _leading_keys(operation: str, p: dict[str, Any]) -> list[str] | None:
    """dynamodb:LeadingKeys, the partition key values an item request touches ("Using IAM policy
    conditions for fine-grained access control", DynamoDB developer guide). The request does not
    say which key attribute is the partition key: of a composite key both values are given,
    which can only make a ForAllValues condition stricter than AWS's, never kinder. (PutItem is
    not mapped: the pipeline's PutItem statement carries no such condition.)"""
    if operation in ("GetItem", "DeleteItem", "UpdateItem"):
        keys = [p["Key"]]
    elif operation == "BatchGetItem":
        keys = [k for request in p["RequestItems"].values() for k in request["Keys"]]
    else:
        return None
    return sorted({str(_plain(v)) for key in keys for v in key.values()})


def _plain(value: Any) -> Any:
    """A key value as the caller wrote it, or typed ({"S": ...}) as the low-level client sends it."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("S", "N", "B"):
        return next(iter(value.values()))
    return value
