//! svc-skills' search and activation, p50 and p99 over gRPC, on the shipped catalogue and then on
//! 100,000 generated skills, beside the same full-text statement run raw by `pgbench` in the same
//! run: `cargo bench -p svc-skills --bench catalogue`.
//!
//! Every call is made one after the other from one caller (latency, not throughput), cycling
//! through the tasks of `tests/labelled_tasks.tsv`, for [`PHASE`] each. The raw side is the
//! statement the service runs for the text part ([`svc_skills::store::search_statement`],
//! [`svc_skills::store::matching_statement`]), its parameters written in as literals, one
//! pgbench script per task, `-M prepared -c 1`, latencies read from pgbench's per-transaction
//! log. Needs `pgbench` on PATH and PostgreSQL at `TEST_DATABASE_ADMIN_URL` (default
//! 127.0.0.1:5432).

// A benchmark is a measuring program run by hand: a step that cannot run stops it with its
// message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::testing::{self, creator, fresh_database, request, start_service};
use proto::skills::v1 as pb;
use proto::skills::v1::skills_client::SkillsClient;
use svc_skills::Config;
use svc_skills::service::{ACTIVATION_CANDIDATES, DEFAULT_SEARCH_LIMIT};
use svc_skills::store::{matching_statement, search_statement};
use tokio_postgres::NoTls;
use tonic::transport::Channel;
use uuid::Uuid;

const TASKS: &str = include_str!("../tests/labelled_tasks.tsv");
/// How long each side of each measurement runs.
const PHASE: Duration = Duration::from_secs(5);
const GENERATED: i32 = 100_000;

/// p50 and p99 in ms of a run of calls, and how many calls.
struct Latencies {
    p50: f64,
    p99: f64,
    calls: usize,
}

impl Latencies {
    fn of(mut micros: Vec<f64>) -> Self {
        assert!(!micros.is_empty(), "no calls were measured");
        micros.sort_by(f64::total_cmp);
        let at = |p: f64| micros[((micros.len() - 1) as f64 * p).round() as usize] / 1000.0;
        Self {
            p50: at(0.5),
            p99: at(0.99),
            calls: micros.len(),
        }
    }
}

/// One line of the table: a call on a catalogue, through the service and raw.
struct Row {
    catalogue: String,
    call: &'static str,
    service: Latencies,
    raw: Latencies,
}

/// The tasks of the labelled set (the first column).
fn tasks() -> Vec<String> {
    TASKS
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| line.split('\t').next().unwrap().to_owned())
        .collect()
}

/// Calls `call` with each task in turn for [`PHASE`]; each call's latency in µs.
async fn through_service<F, Fut>(tasks: &[String], call: F) -> Latencies
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let started = Instant::now();
    let mut micros = Vec::new();
    for task in tasks.iter().cycle() {
        if started.elapsed() >= PHASE {
            break;
        }
        let sent = Instant::now();
        call(task.clone()).await.expect("every call succeeds");
        micros.push(sent.elapsed().as_secs_f64() * 1e6);
    }
    Latencies::of(micros)
}

/// `statement` with `$1`, `$2`, `$3` replaced by `parameters` (SQL literals).
fn with_literals(statement: &str, parameters: [String; 3]) -> String {
    let [first, second, third] = parameters;
    statement
        .replace("$3", &third)
        .replace("$2", &second)
        .replace("$1", &first)
}

fn text_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Runs `scripts` (one statement each) with pgbench against `database_url` for [`PHASE`];
/// every transaction's latency in µs, from pgbench's log.
fn through_pgbench(database_url: &str, label: &str, scripts: &[String]) -> Latencies {
    let directory: PathBuf =
        std::env::temp_dir().join(format!("svc-skills-bench-{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).unwrap();
    let mut command = std::process::Command::new("pgbench");
    command.args(["-n", "-M", "prepared", "-c", "1", "-j", "1", "-l"]);
    command.arg(format!("--log-prefix={}", directory.join("log").display()));
    command.args(["-T", &PHASE.as_secs().to_string()]);
    for (index, script) in scripts.iter().enumerate() {
        let file = directory.join(format!("{index}.sql"));
        std::fs::write(&file, format!("{script};\n")).unwrap();
        command.arg("-f").arg(file);
    }
    command.arg(database_url);
    let output = command.output().expect("run pgbench (is it on PATH?)");
    assert!(
        output.status.success(),
        "pgbench {label}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let micros = logged_latencies(&directory);
    std::fs::remove_dir_all(&directory).unwrap();
    Latencies::of(micros)
}

/// The third field of every line of every `log.*` file: a transaction's latency in µs.
fn logged_latencies(directory: &Path) -> Vec<f64> {
    let mut micros = Vec::new();
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        let is_log = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("log."));
        if !is_log {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let latency = line.split_whitespace().nth(2).expect("a pgbench log line");
            micros.push(latency.parse().expect("a latency in µs"));
        }
    }
    micros
}

/// The words of `task` as the service reads them (its own corrections applied), the tsquery
/// text and the lexemes it looks for, for the raw statements.
async fn read_like_the_service(
    client: &SkillsClient<Channel>,
    db: &tokio_postgres::Client,
    task: &str,
) -> (String, String, Vec<String>) {
    let answer = client
        .clone()
        .search_skills(request(
            pb::SearchRequest {
                query: task.to_owned(),
                limit: Some(1),
            },
            &creator(Uuid::new_v4()),
        ))
        .await
        .expect("a search")
        .into_inner();
    let words: Vec<String> = svc_skills::text::words(task, svc_skills::text::MAX_QUERY_WORDS)
        .into_iter()
        .map(|word| {
            answer
                .corrections
                .iter()
                .find(|correction| correction.from == word)
                .map_or(word, |correction| correction.to.clone())
        })
        .collect();
    let row = db
        .query_one(
            "SELECT coalesce(tsvector_to_array(to_tsvector('english', $1)), '{}')",
            &[&words.join(" ")],
        )
        .await
        .unwrap();
    (
        svc_skills::text::any_of(&words),
        words.join(" "),
        row.get(0),
    )
}

async fn measure(
    client: &SkillsClient<Channel>,
    db: &tokio_postgres::Client,
    database_url: &str,
    tasks: &[String],
    catalogue: &str,
) -> Vec<Row> {
    let mut searches = Vec::new();
    let mut matchings = Vec::new();
    for task in tasks {
        let (tsquery, query, lexemes) = read_like_the_service(client, db, task).await;
        let lexemes = format!(
            "ARRAY[{}]::text[]",
            lexemes
                .iter()
                .map(|lexeme| text_literal(lexeme))
                .collect::<Vec<_>>()
                .join(", ")
        );
        searches.push(with_literals(
            &search_statement(),
            [
                text_literal(&tsquery),
                text_literal(&query),
                DEFAULT_SEARCH_LIMIT.to_string(),
            ],
        ));
        matchings.push(with_literals(
            &matching_statement(),
            [
                text_literal(&tsquery),
                lexemes,
                ACTIVATION_CANDIDATES.to_string(),
            ],
        ));
    }
    let user = creator(Uuid::new_v4());
    let search = through_service(tasks, |task| {
        let mut client = client.clone();
        let user = user.clone();
        async move {
            client
                .search_skills(request(
                    pb::SearchRequest {
                        query: task,
                        limit: None,
                    },
                    &user,
                ))
                .await
                .map(drop)
        }
    })
    .await;
    let raw_search = through_pgbench(database_url, "search", &searches);
    let activate = through_service(tasks, |task| {
        let mut client = client.clone();
        let user = user.clone();
        async move {
            client
                .activate(request(pb::ActivateRequest { task, limit: None }, &user))
                .await
                .map(drop)
        }
    })
    .await;
    let raw_matching = through_pgbench(database_url, "matching", &matchings);
    vec![
        Row {
            catalogue: catalogue.to_owned(),
            call: "search",
            service: search,
            raw: raw_search,
        },
        Row {
            catalogue: catalogue.to_owned(),
            call: "activate",
            service: activate,
            raw: raw_matching,
        },
    ]
}

/// Adds [`GENERATED`] skills made of the shipped catalogue's own words, categories and tags
/// (12 words of description, 80 of content, 3 tags each, drawn with a fixed seed), and two
/// explicit edges from each to other generated skills. (Each draw names the inner row, `+ 0 * i`,
/// so that it is made per row and the aggregate belongs to the inner query.)
async fn generate(db: &tokio_postgres::Client) {
    db.batch_execute("SELECT setseed(0.42)").await.unwrap();
    db.execute(
        "WITH words AS (SELECT array_agg(word ORDER BY word) AS all, count(*)::int AS n \
                        FROM skills.lexicon), \
              shipped AS (SELECT array_agg(DISTINCT category) AS categories, \
                                 count(DISTINCT category)::int AS c FROM skills.skills), \
              tags AS (SELECT array_agg(DISTINCT tag) AS all, count(DISTINCT tag)::int AS n \
                       FROM skills.skills, unnest(tags) tag) \
         INSERT INTO skills.skills \
           (id, name, category, description, tags, content, date_created, date_updated) \
         SELECT gen_random_uuid(), 'generated-' || g, shipped.categories[1 + g % shipped.c], \
           (SELECT string_agg(words.all[1 + floor(random() * words.n)::int + 0 * i], ' ') \
              FROM generate_series(1, 12 + 0 * g) i), \
           ARRAY(SELECT DISTINCT tags.all[1 + floor(random() * tags.n)::int + 0 * i] \
              FROM generate_series(1, 3 + 0 * g) i), \
           (SELECT string_agg(words.all[1 + floor(random() * words.n)::int + 0 * i], ' ') \
              FROM generate_series(1, 80 + 0 * g) i), \
           now() - g * interval '1 second', now() - g * interval '1 second' \
         FROM generate_series(1, $1::int) g, words, shipped, tags",
        &[&GENERATED],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO skills.skill_edges (from_skill, to_skill, kind, weight) \
         SELECT a.id, b.id, 'explicit', $2::float8 \
         FROM generate_series(1, $1::int) g \
         CROSS JOIN LATERAL (VALUES (1 + (g::bigint * 7919) % $1), \
                                    (1 + (g::bigint * 104729) % $1)) AS other(n) \
         JOIN skills.skills a ON a.name = 'generated-' || g \
         JOIN skills.skills b ON b.name = 'generated-' || other.n \
         WHERE a.id <> b.id ON CONFLICT DO NOTHING",
        &[&GENERATED, &svc_skills::service::EXPLICIT_WEIGHT],
    )
    .await
    .unwrap();
    db.batch_execute("ANALYZE skills.skills; ANALYZE skills.skill_edges")
        .await
        .unwrap();
}

async fn count(db: &tokio_postgres::Client) -> i64 {
    db.query_one("SELECT count(*) FROM skills.skills", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::main]
async fn main() {
    let database = fresh_database().await;
    let mut config = Config::local(database.url.clone(), testing::internal_token());
    config.seed = true;
    let service = start_service(|listener, stop| svc_skills::run(config, listener, stop)).await;
    let client = SkillsClient::new(service.channel.clone());
    let (db, connection) = tokio_postgres::connect(&database.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let tasks = tasks();

    let mut rows = Vec::new();
    let shipped = count(&db).await;
    println!("shipped catalogue: {shipped} skills; measuring …");
    rows.extend(
        measure(
            &client,
            &db,
            &database.url,
            &tasks,
            &format!("shipped, {shipped}"),
        )
        .await,
    );
    let started = Instant::now();
    generate(&db).await;
    let total = count(&db).await;
    println!(
        "generated {GENERATED} skills in {:.1} s ({total} in all); measuring …",
        started.elapsed().as_secs_f64()
    );
    rows.extend(
        measure(
            &client,
            &db,
            &database.url,
            &tasks,
            &format!("generated, {total}"),
        )
        .await,
    );

    println!(
        "\n| catalogue | call | service p50 ms | service p99 ms | raw p50 ms | raw p99 ms | overhead p50 ms | calls (service / raw) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} / {} |",
            row.catalogue,
            row.call,
            row.service.p50,
            row.service.p99,
            row.raw.p50,
            row.raw.p99,
            row.service.p50 - row.raw.p50,
            row.service.calls,
            row.raw.calls
        );
    }
}
