# Deployment targets (included from the Makefile; uses its $(BIN) and $(STAMP)).
# The whole walk-through, with what each variable means: docs/DEPLOY.md

STAGE         ?= dev
REGION        ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION))
STACK         ?= drawbridge-$(STAGE)
# S3 bucket (in $(REGION)) that `aws cloudformation package` uploads the Lambda zip to
DEPLOY_BUCKET ?=
# optional SNS topic for the Lambda error alarms
ALARM_TOPIC_ARN ?=
# slack-manifest: the API base URL; empty = read the stack's EndpointURL output
URL           ?=

AWS_REGION_FLAG = $(if $(REGION),--region $(REGION))
ENDPOINT_CMD    = aws cloudformation describe-stacks $(AWS_REGION_FLAG) --stack-name $(STACK) \
                  --query "Stacks[0].Outputs[?OutputKey=='EndpointURL'].OutputValue" --output text

# the bastion account's IAM stack (the human boundary, the self-service policy and group)
BASTION_IAM_STACK ?= drawbridge-bastion-iam

.PHONY: help-deploy package deploy endpoint slack-manifest lint-deploy boundary bastion-iam

help-deploy:
	@echo "make package STAGE=dev|prod      build/<stage>/sam.json + deployment.zip (needs AWS_REGION)"
	@echo "make deploy STAGE=.. DEPLOY_BUCKET=..  package, upload, deploy stack drawbridge-<stage>"
	@echo "make endpoint STAGE=..           print the deployed API URL (stack output EndpointURL)"
	@echo "make slack-manifest STAGE=..     the Slack app manifest with that URL filled in (or URL=...)"
	@echo "make lint-deploy                 package every stage; cfn-lint, parliament, zip checks"
	@echo "make boundary                    policies/permission-boundary.json from the catalog's roles; print the stack parameter"
	@echo "make bastion-iam                 deploy policies/bastion-iam.yaml with the catalog's roles as AssumableRoleArns"

package: $(STAMP)
	$(BIN)/python -m deploy.package --stage $(STAGE) $(AWS_REGION_FLAG)

deploy: package
	@test -n "$(DEPLOY_BUCKET)" || { echo "set DEPLOY_BUCKET=<S3 bucket in $(REGION)> (docs/DEPLOY.md, step 5)"; exit 2; }
	aws cloudformation package $(AWS_REGION_FLAG) \
	  --template-file build/$(STAGE)/sam.json \
	  --s3-bucket $(DEPLOY_BUCKET) --s3-prefix drawbridge/$(STAGE) \
	  --output-template-file build/$(STAGE)/packaged.yaml
	aws cloudformation deploy $(AWS_REGION_FLAG) \
	  --template-file build/$(STAGE)/packaged.yaml \
	  --stack-name $(STACK) \
	  --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
	  --no-fail-on-empty-changeset \
	  $(if $(ALARM_TOPIC_ARN),--parameter-overrides AlarmTopicArn=$(ALARM_TOPIC_ARN))
	@echo "API URL (for the Slack app, see make slack-manifest):"
	@$(ENDPOINT_CMD)

endpoint:
	@$(ENDPOINT_CMD)

slack-manifest: $(STAMP)
	@$(BIN)/python -m deploy.slack_manifest $(if $(URL),--url $(URL),--stack $(STACK) $(AWS_REGION_FLAG))

lint-deploy: $(STAMP)
	BIN=$(BIN) bash deploy/lint.sh

# The human boundary names exactly the catalog's role ARNs (never role/*): rewrite the copy
# parliament lints and tests compare, and print the parameter bastion-iam deploys with.
boundary: $(STAMP)
	$(BIN)/python -m deploy.render boundary --out policies/permission-boundary.json
	@$(BIN)/python -m deploy.render boundary --parameters

# docs/DEPLOY.md step 4; again after every catalog change that adds or removes a role.
bastion-iam: $(STAMP)
	params=$$($(BIN)/python -m deploy.render boundary --parameters) && \
	aws cloudformation deploy $(AWS_REGION_FLAG) \
	  --stack-name $(BASTION_IAM_STACK) \
	  --template-file policies/bastion-iam.yaml \
	  --capabilities CAPABILITY_NAMED_IAM \
	  --no-fail-on-empty-changeset \
	  --parameter-overrides "$$params"
