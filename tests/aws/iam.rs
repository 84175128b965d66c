//! A small IAM policy evaluator for the policy test: which action and
//! resource AWS authorizes a request as, and whether a policy document's
//! `Allow` statements grant it (IAM's `*` and `?` wildcards; action names
//! compare case-insensitively, resources exactly). keyhook's policies use
//! neither `Deny`, `NotAction`, `NotResource` nor conditions; a policy that
//! does is refused rather than misread.

use serde_json::Value;

use crate::harness::proxy::Call;

/// The region and account the emulator answers for (moto's defaults).
pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

/// The (action, resource ARN) pairs AWS checks for `call`.
pub fn authorizations(call: &Call) -> Vec<(String, String)> {
    if !call.transact_items.is_empty() {
        // A transaction is authorized as the actions of its items.
        return call
            .transact_items
            .iter()
            .map(|(action, table)| {
                (
                    format!("dynamodb:{action}"),
                    format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"),
                )
            })
            .collect();
    }
    match (&call.target, &call.table_name) {
        // DynamoDB's JSON calls name their table in the body; Cognito's
        // never do.
        (Some(operation), Some(table)) => {
            vec![(
                format!("dynamodb:{operation}"),
                format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"),
            )]
        }
        (Some(operation), None) => {
            let pool = call.user_pool_id.as_deref().unwrap_or("(no UserPoolId)");
            vec![(
                format!("cognito-idp:{operation}"),
                format!("arn:aws:cognito-idp:{REGION}:{ACCOUNT}:userpool/{pool}"),
            )]
        }
        (None, _) => {
            let mut pairs = vec![(
                format!("apigateway:{}", call.method),
                format!("arn:aws:apigateway:{REGION}::{}", call.path),
            )];
            if call.tagged {
                // The new key's ARN is not known before the call; any id
                // stands for it.
                pairs.push((
                    "apigateway:PUT".to_string(),
                    format!("arn:aws:apigateway:{REGION}::/tags/arn%3Aaws%3Aapigateway%3A{REGION}%3A%3A%2Fapikeys%2Fnewkey"),
                ));
            }
            pairs
        }
    }
}

/// IAM's glob: `*` any run of characters, `?` any one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A policy or operations.json field that is one string or a list of them.
pub fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// What a policy template's placeholders stand for in one deployment. As
/// `deploy/iam/render.py` does, a resource naming `${UsagePlanId}` stands
/// once for each plan.
pub struct Deployment {
    pub user_pool_id: String,
    pub usage_plans: Vec<String>,
    pub claim_table: String,
}

impl Deployment {
    /// The resources `template` renders to.
    pub fn render(&self, template: &str) -> Vec<String> {
        let fixed = template
            .replace("${Region}", REGION)
            .replace("${AccountId}", ACCOUNT)
            .replace("${UserPoolId}", &self.user_pool_id)
            .replace("${ClaimTable}", &self.claim_table);
        let rendered: Vec<String> = if fixed.contains("${UsagePlanId}") {
            self.usage_plans
                .iter()
                .map(|plan| fixed.replace("${UsagePlanId}", plan))
                .collect()
        } else {
            vec![fixed]
        };
        for resource in &rendered {
            assert!(
                !resource.contains("${"),
                "no value for a placeholder in {template}"
            );
        }
        rendered
    }
}

/// Whether `policy` (a template, rendered for `deployment`) allows `action`
/// on `resource`.
pub fn allows(policy: &Value, deployment: &Deployment, action: &str, resource: &str) -> bool {
    policy["Statement"]
        .as_array()
        .expect("Statement list")
        .iter()
        .any(|statement| {
            for unsupported in ["NotAction", "NotResource", "Condition"] {
                assert!(
                    statement.get(unsupported).is_none(),
                    "this evaluator does not read {unsupported}"
                );
            }
            match statement["Effect"].as_str() {
                Some("Allow") => {}
                Some("Deny") => panic!("this evaluator does not read Deny statements"),
                other => panic!("statement Effect {other:?}"),
            }
            strings(&statement["Action"])
                .iter()
                .any(|a| glob(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
                && strings(&statement["Resource"])
                    .iter()
                    .flat_map(|r| deployment.render(r))
                    .any(|r| glob(&r, resource))
        })
}

#[test]
fn globs_and_statements_match_like_iam() {
    assert!(glob(
        "arn:aws:apigateway:*::/apikeys/*",
        "arn:aws:apigateway:us-east-1::/apikeys/abc"
    ));
    assert!(!glob(
        "arn:aws:apigateway:*::/apikeys",
        "arn:aws:apigateway:us-east-1::/apikeys/abc"
    ));
    assert!(glob("apigateway:*", "apigateway:GET"));
    assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
    assert!(glob("*", "") && glob("a*", "a") && !glob("a*b", "ab/c"));
    let policy = serde_json::json!({"Statement": [
        {"Effect": "Allow", "Action": ["apigateway:POST"], "Resource": "arn:aws:apigateway:${Region}::/usageplans/${UsagePlanId}/keys"},
        {"Effect": "Allow", "Action": "cognito-idp:DescribeUserPool", "Resource": ["arn:aws:cognito-idp:${Region}:${AccountId}:userpool/${UserPoolId}"]},
        {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": ["arn:aws:dynamodb:${Region}:${AccountId}:table/${ClaimTable}"]},
    ]});
    let deployment = Deployment {
        user_pool_id: "us-east-1_pool".into(),
        usage_plans: vec!["p1".into(), "p2".into()],
        claim_table: "claims".into(),
    };
    let plan_keys = |plan: &str| format!("arn:aws:apigateway:{REGION}::/usageplans/{plan}/keys");
    let pool = |id: &str| format!("arn:aws:cognito-idp:{REGION}:{ACCOUNT}:userpool/{id}");
    let table = |name: &str| format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}");
    for (action, resource, allowed) in [
        ("apigateway:POST", plan_keys("p2"), true),
        ("apigateway:POST", plan_keys("p3"), false),
        ("apigateway:DELETE", plan_keys("p1"), false),
        ("cognito-idp:describeuserpool", pool("us-east-1_pool"), true),
        (
            "cognito-idp:DescribeUserPool",
            pool("us-east-1_other"),
            false,
        ),
        ("dynamodb:GetItem", table("claims"), true),
        ("dynamodb:GetItem", table("claims-other"), false),
        ("dynamodb:PutItem", table("claims"), false),
    ] {
        assert_eq!(
            allows(&policy, &deployment, action, &resource),
            allowed,
            "{action} on {resource}"
        );
    }
}

#[test]
fn calls_are_authorized_as_their_service_does() {
    let call = |target: Option<&str>, pool: Option<&str>, table: Option<&str>| Call {
        operation: target.unwrap_or("GetApiKeys").to_string(),
        status: 200,
        method: if target.is_some() { "POST" } else { "GET" }.to_string(),
        path: if target.is_some() { "/" } else { "/apikeys" }.to_string(),
        target: target.map(str::to_string),
        user_pool_id: pool.map(str::to_string),
        table_name: table.map(str::to_string),
        transact_items: Vec::new(),
        tagged: false,
    };
    let one = |c: Call| authorizations(&c).remove(0);
    let mut transaction = call(Some("TransactWriteItems"), None, Some("claims"));
    transaction.transact_items = vec![
        ("PutItem".into(), "claims".into()),
        ("UpdateItem".into(), "claims".into()),
    ];
    assert_eq!(
        authorizations(&transaction),
        [
            (
                "dynamodb:PutItem".to_string(),
                format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/claims")
            ),
            (
                "dynamodb:UpdateItem".to_string(),
                format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/claims")
            ),
        ]
    );
    assert_eq!(
        one(call(Some("PutItem"), None, Some("claims"))),
        (
            "dynamodb:PutItem".to_string(),
            format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/claims")
        )
    );
    assert_eq!(
        one(call(Some("DescribeUserPool"), Some("us-east-1_p"), None)),
        (
            "cognito-idp:DescribeUserPool".to_string(),
            format!("arn:aws:cognito-idp:{REGION}:{ACCOUNT}:userpool/us-east-1_p")
        )
    );
    assert_eq!(
        one(call(None, None, None)),
        (
            "apigateway:GET".to_string(),
            format!("arn:aws:apigateway:{REGION}::/apikeys")
        )
    );
}
