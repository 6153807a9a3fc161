//! The `mcp-gateway` binary: configuration, logging, then the server or an operator command.
use clap::Parser;
use mcp_gateway::app::Application;
use mcp_gateway::cli::{self, Cli, Command};
use mcp_gateway::config::{Config, LogFormat};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

mod allocator;

#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    allocator::return_large_blocks_to_the_os();
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let _flush_logs_at_exit = init_logging(config.logging.format);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        command => cli::run(command, config).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Lines waiting for the writer thread: over a second of access lines at full load. The buffer is allocated
/// whole at start, 32 bytes a line (tracing-appender's default of 128,000 lines is 4 MB, resident for good).
const LOG_BUFFER_LINES: usize = 16_384;

/// By default our own lines at `info` (one access line per request, and what the server decides) and every
/// library's warnings; `RUST_LOG` overrides. Lines are written to stderr by a background thread, so a
/// request never waits for the terminal or a log collector (past a full buffer of [`LOG_BUFFER_LINES`],
/// lines are dropped rather than the request held). The guard flushes what is buffered when `main` returns.
fn init_logging(format: LogFormat) -> WorkerGuard {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("warn,mcp_gateway=info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_BUFFER_LINES)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
    guard
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let addr = std::net::SocketAddr::new(config.server.bind, config.server.port);
    let issuer = config.server.issuer.clone();
    let resource = config.server.resource.as_str().to_owned();
    let app = Application::build_to_serve(config).await?;
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    println!("mcp-gateway listening on http://{addr}");
    println!("  MCP endpoint:   {resource}");
    println!("  sign in:        {issuer}/login   (create an account at {issuer}/signup)");
    println!("  API docs:       {issuer}/docs");
    app.serve_until(listener, shutdown_signal()).await?;
    Ok(())
}

/// Ctrl-C or SIGTERM: stop accepting, let in-flight requests finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
