//! Standard output that never panics. `robovlm … | head` closes the pipe early and a full disk
//! fails writes; `println!` would panic on both. Here a failed write is an error whose cause
//! `main` inspects: a closed pipe ends the process quietly with the status a shell reports for
//! SIGPIPE (141), anything else is one error line.

use std::io::Write;

/// What a failed write to stdout says.
pub const STDOUT: &str = "cannot write to standard output";

/// Writes one line to stdout (use [`out!`]).
pub fn line(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_fmt(args).and_then(|()| stdout.write_all(b"\n")).map_err(|e| anyhow::Error::new(e).context(STDOUT))
}

/// `println!` that returns the write error from the enclosing function instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))?
    };
}
pub(crate) use out;

/// Whether `e` was caused by the reader of stdout going away (EPIPE).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
