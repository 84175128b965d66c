//! Starts moto's server mode once per test binary, on a loopback port it
//! picks itself, installing `moto[server]` with pip when it is missing.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_apigateway::config::{Credentials, SharedCredentialsProvider};

pub struct Moto {
    pub endpoint: String,
    _child: Child,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

fn ensure_installed() {
    let present = Command::new("python3")
        .args(["-c", "import moto.server, flask, flask_cors"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        let status = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "moto[server]>=5"])
            .status()
            .expect("run pip");
        assert!(status.success(), "pip install 'moto[server]' failed");
    }
}

impl Moto {
    /// The moto server shared by this test binary's tests. Each test makes
    /// its own usage plans and user pool, so they do not see each other.
    pub fn shared() -> &'static Moto {
        MOTO.get_or_init(Moto::start)
    }

    /// A moto server of the caller's own, stopped when dropped: for tests
    /// whose keyhooks refresh every second. Every refresh lists the whole
    /// account, and the shared one holds every key of the binary's tests:
    /// on their own, such tests neither wait for it nor slow it for others.
    pub fn own() -> Moto {
        Moto::start()
    }

    fn start() -> Moto {
        ensure_installed();
        // Port 0: moto binds a free port and names it on stderr
        // (" * Running on http://127.0.0.1:PORT"). The shell watches this
        // test process and stops moto when it ends (or on SIGTERM, when
        // dropped), so no emulator outlives the run.
        let script = format!(
            "python3 -m moto.server -H 127.0.0.1 -p 0 2>&1 & m=$!; \
             trap 'kill $m; exit 0' TERM; \
             while kill -0 {parent} 2>/dev/null; do sleep 1 & wait $!; done; kill $m",
            parent = std::process::id()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start moto");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let endpoint = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                let url = line.split("Running on ").nth(1)?;
                Some(url.trim().trim_end_matches('/').to_string())
            })
            .expect("moto names the address it listens on");
        // moto logs every request: keep its pipe drained.
        std::thread::spawn(move || lines.for_each(drop));
        Moto {
            endpoint,
            _child: child,
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self._child.id().to_string())
            .status();
        let _ = self._child.wait();
    }
}

/// The access key of moto's default account.
pub const DEFAULT_ACCESS_KEY: &str = "testing";

/// An SDK configuration for `endpoint` with static test credentials.
pub fn sdk_config(endpoint: &str) -> SdkConfig {
    sdk_config_as(endpoint, DEFAULT_ACCESS_KEY)
}

/// As [`sdk_config`], in the moto account `access_key` belongs to.
pub fn sdk_config_as(endpoint: &str, access_key: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            access_key,
            "testing",
            None,
            None,
            "keyhook-tests",
        )))
        .build()
}

/// The access key of a moto account no other test uses: moto's STS
/// `AssumeRole` into a fresh account id answers a key that moto files every
/// later call under (its signature is not checked). A test whose keyhook
/// settles every key in the account (the refresh lists them all) needs one,
/// or it would settle other tests' keys and they its own.
pub async fn private_account(endpoint: &str) -> String {
    static ACCOUNTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = ACCOUNTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let account = format!("{:06}{n:06}", std::process::id() % 1_000_000);
    let role = format!("arn:aws:iam::{account}:role/keyhook-tests");
    // moto routes by the service the credential scope names.
    let scope = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sts/aws4_request, \
                 SignedHeaders=host, Signature=0";
    let answer = reqwest::Client::new()
        .post(format!("{endpoint}/"))
        .header("authorization", scope)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "Action=AssumeRole&Version=2011-06-15&RoleSessionName=keyhook-tests&RoleArn={}",
            role.replace(':', "%3A").replace('/', "%2F")
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = answer
        .split("<AccessKeyId>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_else(|| panic!("moto's AssumeRole answered no key: {answer}"));
    key.to_string()
}

/// What a test's own AWS resources are.
pub struct Seed {
    /// The DynamoDB claim table (as `deploy/init/seed_aws.py` makes it).
    pub claim_table: String,
    pub api_id: String,
    pub plans: Vec<String>,
    pub pool_id: String,
    pub scopes: Vec<String>,
}

/// The claim table keyhook expects (`KEYHOOK_CLAIM_TABLE`): partition key
/// `app`, a string; on demand.
pub async fn create_claim_table(sdk: &SdkConfig, name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    aws_sdk_dynamodb::Client::new(sdk)
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("app")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("app")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// Makes a REST API, `plans` usage plans and a user pool with a resource
/// server, all fresh, through the real SDK.
pub async fn seed(sdk: &SdkConfig, plans: usize) -> Seed {
    let apigw = aws_sdk_apigateway::Client::new(sdk);
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(sdk);
    let api = apigw
        .create_rest_api()
        .name("keyhook-test")
        .send()
        .await
        .unwrap();
    let api_id = api.id().unwrap().to_string();
    let mut plan_ids = Vec::new();
    for i in 0..plans {
        let plan = apigw
            .create_usage_plan()
            .name(format!("plan-{i}"))
            .send()
            .await
            .unwrap();
        plan_ids.push(plan.id().unwrap().to_string());
    }
    let pool = cognito
        .create_user_pool()
        .pool_name("keyhook-test")
        .send()
        .await
        .unwrap();
    let pool_id = pool.user_pool().unwrap().id().unwrap().to_string();
    cognito
        .create_resource_server()
        .user_pool_id(&pool_id)
        .identifier("https://api.keyhook.test")
        .name("api")
        .scopes(
            aws_sdk_cognitoidentityprovider::types::ResourceServerScopeType::builder()
                .scope_name("read")
                .scope_description("read")
                .build()
                .unwrap(),
        )
        .scopes(
            aws_sdk_cognitoidentityprovider::types::ResourceServerScopeType::builder()
                .scope_name("write")
                .scope_description("write")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    static TABLES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = TABLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let claim_table = format!("keyhook-claims-{}-{n}", std::process::id());
    create_claim_table(sdk, &claim_table).await;
    Seed {
        claim_table,
        api_id,
        plans: plan_ids,
        pool_id,
        scopes: vec![
            "https://api.keyhook.test/read".into(),
            "https://api.keyhook.test/write".into(),
        ],
    }
}
