//! Print the Python stack of every thread of a process, using the library API.
//!
//!     cargo run --example dump_traces -- PID

fn print_python_stacks(pid: py_spy::Pid) -> anyhow::Result<()> {
    // Attach with the default options (the target is paused while it is read).
    let config = py_spy::Config::default();
    let mut process = py_spy::PythonSpy::new(pid, &config)?;

    // One stack trace per thread, innermost frame first.
    let traces = process.get_stack_traces()?;
    for trace in traces {
        println!("Thread {:#X} ({})", trace.thread_id, trace.status_str());
        for frame in &trace.frames {
            println!("\t {} ({}:{})", frame.name, frame.filename, frame.line);
        }
    }
    Ok(())
}

fn main() {
    let Some(pid) = std::env::args().nth(1).and_then(|a| a.parse().ok()) else {
        eprintln!("usage: dump_traces PID");
        std::process::exit(2);
    };
    if let Err(e) = print_python_stacks(pid) {
        eprintln!("failed to print stack traces: {e:#}");
        std::process::exit(1);
    }
}
