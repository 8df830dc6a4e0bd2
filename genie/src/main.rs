//! `genie`: the operator's command line. Every subcommand calls the owning service's library.

use std::net::TcpListener as StdTcpListener;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "genie", version, about = "Run and operate the Genie platform")]
struct Cli {
    /// Worker threads of the async runtime; set it to the container's CPU limit
    /// (default: the number of cores the machine has).
    #[arg(long, env = "GENIE_WORKER_THREADS", global = true)]
    worker_threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every service and the gateway in one process (local runs and small installs).
    Up,
    /// One service alone, as a Kubernetes Deployment runs it.
    Serve {
        #[arg(value_enum)]
        service: Service,
    },
    /// Applies every service's database migrations, then exits.
    Migrate,
    /// Creates a registration invite and prints its code.
    Invite {
        /// Only this email may redeem the invite.
        #[arg(long)]
        email: Option<String>,
        /// Hours until the invite expires (1 to 720).
        #[arg(long, default_value_t = 72)]
        hours: u32,
        /// The administrator the invite is created for.
        #[arg(long, env = "ADMIN_EMAIL")]
        admin_email: String,
    },
    /// Re-seals every vault record under the newest key, in batches, while the services run.
    /// Resumable: stopped at any point, a second run goes on with what is left.
    RotateKeys {
        /// Records per transaction (default: CREDENTIALS_ROTATE_BATCH, else 100).
        #[arg(long)]
        batch: Option<i64>,
    },
    /// Imports every `SKILL.md` under DIR into the skills catalogue (idempotent: reports what
    /// was created, updated and left unchanged).
    ImportSkills { dir: std::path::PathBuf },
}

#[derive(Clone, Copy, ValueEnum)]
enum Service {
    Gateway,
    Auth,
    Usage,
    Credentials,
    Skills,
    Queue,
    /// The media job worker (it serves no port; run as many as the work needs).
    QueueWorker,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = cli.worker_threads {
        anyhow::ensure!(threads > 0, "GENIE_WORKER_THREADS must be at least 1");
        runtime.worker_threads(threads);
    }
    runtime.build()?.block_on(run(cli.command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Up => {
            let _telemetry = common::telemetry::init("genie")?;
            let auth = svc_auth::Config::from_env()?;
            let usage = svc_usage::Config::from_env()?;
            let credentials = svc_credentials::Config::from_env()?;
            let skills = svc_skills::Config::from_env()?;
            let queue = svc_queue::Config::from_env()?;
            let gateway = gateway::Config::from_env()?;
            let auth_listener = bind_grpc("svc-auth", auth.grpc_addr).await?;
            let usage_listener = bind_grpc("svc-usage", usage.grpc_addr).await?;
            let credentials_listener = bind_grpc("svc-credentials", credentials.grpc_addr).await?;
            let skills_listener = bind_grpc("svc-skills", skills.grpc_addr).await?;
            let queue_listener = bind_grpc("svc-queue", queue.grpc_addr).await?;
            let worker_listener = bind_grpc("svc-queue worker", queue.worker_health_addr).await?;
            let http = bind_http(&gateway)?;
            tracing::info!(gateway = %http.local_addr()?, "genie is up");
            let gateway_server = gateway::build(gateway, http)?;
            tokio::try_join!(
                svc_auth::run(auth, auth_listener, common::shutdown::signal()),
                svc_usage::run(usage, usage_listener, common::shutdown::signal()),
                svc_credentials::run(
                    credentials,
                    credentials_listener,
                    common::shutdown::signal()
                ),
                svc_skills::run(skills, skills_listener, common::shutdown::signal()),
                svc_queue::run(queue.clone(), queue_listener, common::shutdown::signal()),
                svc_queue::run_worker(queue, worker_listener, common::shutdown::signal()),
                async { gateway_server.await.context("gateway") },
            )?;
            Ok(())
        }
        Command::Serve {
            service: Service::Auth,
        } => {
            let _telemetry = common::telemetry::init("svc-auth")?;
            svc_auth::serve(svc_auth::Config::from_env()?).await
        }
        Command::Serve {
            service: Service::Usage,
        } => {
            let _telemetry = common::telemetry::init("svc-usage")?;
            svc_usage::serve(svc_usage::Config::from_env()?).await
        }
        Command::Serve {
            service: Service::Credentials,
        } => {
            let _telemetry = common::telemetry::init("svc-credentials")?;
            svc_credentials::serve(svc_credentials::Config::from_env()?).await
        }
        Command::Serve {
            service: Service::Skills,
        } => {
            let _telemetry = common::telemetry::init("svc-skills")?;
            svc_skills::serve(svc_skills::Config::from_env()?).await
        }
        Command::Serve {
            service: Service::Queue,
        } => {
            let _telemetry = common::telemetry::init("svc-queue")?;
            svc_queue::serve(svc_queue::Config::from_env()?).await
        }
        Command::Serve {
            service: Service::QueueWorker,
        } => {
            let _telemetry = common::telemetry::init("svc-queue-worker")?;
            svc_queue::serve_worker(svc_queue::Config::from_env()?).await
        }
        Command::Serve {
            service: Service::Gateway,
        } => {
            let _telemetry = common::telemetry::init("gateway")?;
            let config = gateway::Config::from_env()?;
            let listener = bind_http(&config)?;
            gateway::build(config, listener)?.await.context("gateway")
        }
        Command::Migrate => {
            let auth = svc_auth::Config::from_env()?;
            let usage = svc_usage::Config::from_env()?;
            svc_auth::migrate(&auth.database_url).await?;
            svc_usage::migrate(&usage.database_url).await?;
            let credentials: String = common::config::var(
                "CREDENTIALS_DATABASE_URL",
                svc_credentials::config::DEFAULT_DATABASE_URL.to_owned(),
            )?;
            svc_credentials::migrate(&credentials).await?;
            let skills: String = common::config::var(
                "SKILLS_DATABASE_URL",
                svc_skills::config::DEFAULT_DATABASE_URL.to_owned(),
            )?;
            svc_skills::migrate(&skills).await?;
            let queue: String = common::config::var(
                "QUEUE_DATABASE_URL",
                svc_queue::config::DEFAULT_DATABASE_URL.to_owned(),
            )?;
            svc_queue::migrate(&queue).await?;
            println!(
                "migrations applied: svc-auth, svc-usage, svc-credentials, svc-skills, svc-queue"
            );
            Ok(())
        }
        Command::Invite {
            email,
            hours,
            admin_email,
        } => {
            let auth = svc_auth::Config::from_env()?;
            let invite = svc_auth::create_invite(&auth, &admin_email, email, Some(hours)).await?;
            println!("invite code: {}", invite.code);
            println!(
                "expires at:  {}",
                svc_auth::tokens::rfc3339(invite.expires_at)
            );
            if let Some(email) = invite.email {
                println!("only for:    {email}");
            }
            Ok(())
        }
        Command::RotateKeys { batch } => {
            let mut config = svc_credentials::config::RotateConfig::from_env()?;
            if let Some(batch) = batch {
                anyhow::ensure!((1..=10_000).contains(&batch), "--batch must be 1 to 10000");
                config.batch = batch;
            }
            let newest = config.keys.newest();
            println!("re-sealing every record under key version {newest}");
            let report = svc_credentials::rotate_keys(config, |table, done| {
                println!("  {table}: {done} re-sealed");
            })
            .await?;
            print_rotation(&report, newest)
        }
        Command::ImportSkills { dir } => {
            let config = svc_skills::Config::from_env()?;
            let report = svc_skills::import_dir(&config, &dir).await?;
            for (what, names) in [
                ("created", &report.created),
                ("updated", &report.updated),
                ("unchanged", &report.unchanged),
            ] {
                println!("{what}: {}", names.len());
                if what != "unchanged" {
                    for name in names {
                        println!("  {name}");
                    }
                }
            }
            Ok(())
        }
    }
}

/// The rotation's outcome; an error when any record is not under the newest key.
fn print_rotation(
    report: &svc_credentials::rotate::RotationReport,
    newest: u32,
) -> anyhow::Result<()> {
    for (table, done) in &report.resealed {
        println!("{table}: {done} re-sealed");
    }
    for failed in &report.failed {
        println!(
            "not rotated: {} {}: {}",
            failed.table, failed.id, failed.error
        );
    }
    println!("sealed values by key version now:");
    for (table, version, count) in &report.remaining {
        let version = version.map_or_else(|| "imported".to_owned(), |v| format!("v{v}"));
        println!("  {table} {version}: {count}");
    }
    match report.legacy_left() {
        0 => println!(
            "no legacy records remain (every record is bound to its row): \
             CREDENTIALS_ACCEPT_LEGACY=false may now be set"
        ),
        legacy => println!(
            "{legacy} legacy record(s) remain (imported from the original service, not yet bound): \
             keep CREDENTIALS_ACCEPT_LEGACY on until a run reports none"
        ),
    }
    let left = report.left_behind(newest);
    anyhow::ensure!(
        left == 0,
        "{left} record(s) are not under key version {newest} ({} could not be opened); \
         records busy during the run are done by running it again",
        report.failed.len()
    );
    println!("every record is under key version {newest}");
    Ok(())
}

async fn bind_grpc(
    service: &str,
    addr: std::net::SocketAddr,
) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind {service} to {addr}"))
}

fn bind_http(config: &gateway::Config) -> anyhow::Result<StdTcpListener> {
    StdTcpListener::bind(config.addr)
        .with_context(|| format!("cannot bind the gateway to {}", config.addr))
}
