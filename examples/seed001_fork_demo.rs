//! Seed 001, section 1.2.1.2: `os.fork()` with `demo()` in the child and "main process
//! X is over" printed by both.
//! Run: `cargo run --example seed001_fork_demo`.

use multiprocess::Fork;

fn demo() {
    println!("[INFO] do something by process {}", std::process::id());
    println!(
        "[INFO] this process parent pid is {}",
        multiprocess::parent_process().map_or(0, |p| p.pid())
    );
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let process = multiprocess::fork()?;
    match process {
        Fork::Parent(pid) => println!("{pid}"),
        Fork::Child => println!("0"),
    }
    if process == Fork::Child {
        demo();
    }
    println!("main process {} is over", std::process::id());
    match process {
        Fork::Child => std::process::exit(0),
        Fork::Parent(pid) => {
            multiprocess::waitpid(pid)?;
        }
    }
    Ok(())
}
