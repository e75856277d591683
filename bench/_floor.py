"""The floor a cold start is measured against (run as a script, not imported): a fresh
process that imports boto3 and makes one DynamoDB ``PutItem`` - the least any Lambda
function that writes to DynamoDB pays on its first request. Prints one line:
``BENCH_RESULT {json}`` with the CPU time (``time.process_time``) of the import + call."""

import time

CPU0 = time.process_time()
WALL0 = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import uuid  # noqa: E402


def main() -> None:
    c0, w0 = time.process_time(), time.perf_counter()
    import boto3  # noqa: PLC0415 - the point: the import, timed

    client = boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    client.put_item(TableName=os.environ["DRAWBRIDGE_TABLE"],
                    Item={"PK": {"S": f"FLOOR#{uuid.uuid4().hex}"}, "SK": {"S": "FLOOR"}})
    print("BENCH_RESULT " + json.dumps({"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0,
                                        "startup_cpu": c0 - CPU0}), flush=True)


if __name__ == "__main__":
    main()
