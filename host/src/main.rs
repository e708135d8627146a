//! The `corral` binary: parse configuration, start tracing, run the verb.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use corral::config::{Cli, Command};
use corral::runtime::compile;

fn main() -> ExitCode {
    // The compiler process (see runtime::compile) skips everything else.
    let mut args = std::env::args_os().skip(1);
    if args
        .next()
        .is_some_and(|a| a == compile::COMPILE_SUBCOMMAND)
    {
        return ExitCode::from(compile::compiler_main(args) as u8);
    }

    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "corral", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let log_format = match &cli.command {
        Command::Serve(args) => args.log_format,
        _ => None,
    };
    corral::logging::init(
        log_format.unwrap_or_else(corral::logging::LogFormat::detect),
        cli.command.default_log_filter(),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => corral::cli::run::run(args).await,
            Command::Serve(args) => corral::cli::serve::serve(args).await,
            Command::Migrate(args) => corral::cli::serve::migrate(args).await,
            Command::Openapi => {
                println!("{}", corral::http::openapi::document());
                Ok(0)
            }
            Command::Client(command) => corral::cli::client::run(command).await,
            Command::SecretKey(command) => corral::cli::secret_key::run(command).await,
            Command::New(args) => corral::cli::new::run(args),
            Command::Completions { .. } => Ok(0),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
