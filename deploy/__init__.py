"""Deploy-time tooling: render the Lambda IAM policies and the merge template, package, lint.

Nothing here ships in the Lambda zip (only app.py and chalicelib/ do).
"""
