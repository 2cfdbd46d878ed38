//! Which deployment the CLI talks to, resolved once: the SDK configuration (the caller's normal
//! credentials and region, or an emulator's endpoint), the ledger table, the evaluator, and the
//! evaluator's two `AWS_IAM` function URLs that operator commands are signed to.

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::args::TargetArgs;
use crate::CliError;

pub struct Target {
    pub sdk: SdkConfig,
    pub ledger_table: String,
    pub evaluator: String,
    /// Where commands are sent, signed; `None` only when no stack and no URLs were named (the
    /// local world, whose evaluator accepts direct invoke).
    pub urls: Option<crate::url::Urls>,
    lambda_endpoint: Option<String>,
}

/// The stack's logical ids (infra/template.yaml).
const LEDGER_LOGICAL_ID: &str = "LedgerTable";
const EVALUATOR_LOGICAL_ID: &str = "AlarmEvaluatorFunction";
/// The stack's outputs naming the function URLs (infra/template.yaml `Outputs`).
const READ_URL_OUTPUT: &str = "OperatorReadUrl";
const OPERATE_URL_OUTPUT: &str = "OperatorActionsUrl";

pub async fn sdk_config(args: &TargetArgs) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(r) = &args.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(e) = &args.endpoint_url {
        loader = loader.endpoint_url(e);
    }
    loader.load().await
}

/// The function URLs from the stack's outputs (CloudFormation `DescribeStacks`).
async fn stack_urls(sdk: &SdkConfig, stack: &str) -> Result<crate::url::Urls, CliError> {
    let what = format!("stack {stack}: outputs {READ_URL_OUTPUT}, {OPERATE_URL_OUTPUT}");
    let out = aws_sdk_cloudformation::Client::new(sdk)
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| CliError::Aws {
            what: what.clone(),
            error: aws_sdk_cloudformation::error::DisplayErrorContext(e).to_string(),
        })?;
    let outputs = out
        .stacks()
        .first()
        .map(|s| s.outputs())
        .unwrap_or_default();
    let find = |key: &str| {
        outputs
            .iter()
            .find(|o| o.output_key() == Some(key))
            .and_then(|o| o.output_value())
            .map(str::to_string)
            .ok_or_else(|| CliError::Aws {
                what: what.clone(),
                error: format!(
                    "no output {key} (a stack from before the function URLs? redeploy it)"
                ),
            })
    };
    Ok(crate::url::Urls {
        read: find(READ_URL_OUTPUT)?,
        operate: find(OPERATE_URL_OUTPUT)?,
    })
}

impl Target {
    pub async fn resolve(args: &TargetArgs) -> Result<Self, CliError> {
        let sdk = sdk_config(args).await;
        let (mut table, mut evaluator) = (args.ledger_table.clone(), args.evaluator.clone());
        if table.is_none() || evaluator.is_none() {
            let Some(stack) = &args.stack else {
                return Err(CliError::Usage(
                    "name the deployment: --stack NAME (with --region), or --ledger-table and --evaluator".into(),
                ));
            };
            let cfn = aws_sdk_cloudformation::Client::new(&sdk);
            let physical = |logical: &'static str| {
                let cfn = cfn.clone();
                async move {
                    let out = cfn
                        .describe_stack_resource()
                        .stack_name(stack)
                        .logical_resource_id(logical)
                        .send()
                        .await
                        .map_err(|e| CliError::Aws {
                            what: format!("stack {stack}: resource {logical}"),
                            error: aws_sdk_cloudformation::error::DisplayErrorContext(e)
                                .to_string(),
                        })?;
                    out.stack_resource_detail()
                        .and_then(|d| d.physical_resource_id())
                        .map(str::to_string)
                        .ok_or_else(|| CliError::Aws {
                            what: format!("stack {stack}: resource {logical}"),
                            error: "no physical id (not created yet?)".into(),
                        })
                }
            };
            if table.is_none() {
                table = Some(physical(LEDGER_LOGICAL_ID).await?);
            }
            if evaluator.is_none() {
                evaluator = Some(physical(EVALUATOR_LOGICAL_ID).await?);
            }
        }
        let urls = match (&args.read_url, &args.operate_url, &args.stack) {
            (Some(read), Some(operate), _) => Some(crate::url::Urls {
                read: read.clone(),
                operate: operate.clone(),
            }),
            (_, _, Some(stack)) => Some(stack_urls(&sdk, stack).await?),
            _ => None,
        };
        Ok(Self {
            sdk,
            ledger_table: table.unwrap_or_default(),
            evaluator: evaluator.unwrap_or_default(),
            urls,
            lambda_endpoint: args.lambda_endpoint_url.clone(),
        })
    }

    pub fn ledger(&self) -> crate::ledger::LedgerReader {
        crate::ledger::LedgerReader {
            client: aws_sdk_dynamodb::Client::new(&self.sdk),
            table: self.ledger_table.clone(),
        }
    }

    /// Where this command goes: its function URL, or the evaluator by direct invoke.
    pub fn destination(&self, cmd: &failover_policy::signal::OperatorCommand) -> String {
        match &self.urls {
            Some(u) => u.for_command(cmd).to_string(),
            None => self.evaluator.clone(),
        }
    }

    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        let mut conf = aws_sdk_lambda::config::Builder::from(&self.sdk);
        if let Some(e) = &self.lambda_endpoint {
            conf = conf.endpoint_url(e);
        }
        aws_sdk_lambda::Client::from_conf(conf.build())
    }
}
