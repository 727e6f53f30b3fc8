// The program of the `endings` and `endings_abort` examples (one file, two
// builds: the second with `-C panic=abort`).

use std::process::ExitCode;
use std::time::Duration;

#[overrun::measure]
fn step(i: u64) -> u64 {
    std::hint::black_box(i * 3)
}

#[overrun::main(budget = "60s")]
fn main() -> ExitCode {
    for i in 0..10 {
        step(i);
    }
    let how = std::env::args().nth(1).unwrap_or_default();
    match how.as_str() {
        "return" => ExitCode::from(4),
        "exit" => {
            let worker = std::thread::spawn(|| std::process::exit(3));
            let _ = worker.join();
            unreachable!("the worker ended the process")
        }
        "panic" => panic!("the run ends by a panic"),
        "exit-in-hook" => {
            // A hook that ends the process itself, while the run is ending.
            overrun::run::on_exit(|| std::process::exit(6));
            ExitCode::SUCCESS
        }
        "slow-hook" => {
            // A last export that takes its time: a second signal ends the
            // process at once.
            overrun::run::on_exit(|| std::thread::sleep(Duration::from_secs(30)));
            println!("ready");
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        "wait" => {
            println!("ready");
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        "own-handler" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                // Installed before `ready` is printed, so a signal sent
                // after it always finds this handler.
                #[cfg(unix)]
                let mut interrupt =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                        .expect("a handler");
                println!("ready");
                #[cfg(unix)]
                interrupt.recv().await;
                #[cfg(not(unix))]
                tokio::signal::ctrl_c().await.expect("a handler");
                println!("handled");
            });
            ExitCode::from(7)
        }
        other => {
            eprintln!("endings: unknown ending `{other}`; see the file's docs");
            ExitCode::from(2)
        }
    }
}
