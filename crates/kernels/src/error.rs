//! The crate's one error type.

/// Why a kernel call was refused. Every variant names the operand and both sizes, so a caller
/// with a wrong shape learns which one without reading this crate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A buffer's length does not match the shape it was given with.
    #[error("{operand}: expected {expected} values ({shape}), got {got}")]
    Length {
        /// Which operand (`weights`, `lhs`, `out`).
        operand: &'static str,
        /// The shape as the caller stated it, e.g. `[272, 2048]`.
        shape: String,
        /// Values that shape needs.
        expected: usize,
        /// Values the buffer holds.
        got: usize,
    },
    /// A dimension is zero or its product overflows `usize`.
    #[error("{operand}: unusable shape {shape}")]
    Shape {
        /// Which operand.
        operand: &'static str,
        /// The shape as the caller stated it.
        shape: String,
    },
    /// The left operand's inner dimension differs from the packed matrix's.
    #[error("lhs has {lhs} columns but the packed weights have {packed} rows (inner dimension)")]
    Inner {
        /// Columns of the left operand.
        lhs: usize,
        /// Rows (`k`) of the packed matrix.
        packed: usize,
    },
    /// This CPU lacks the instructions the kernel is written for (the caller keeps its own
    /// path).
    #[error("{what}: not supported on this CPU")]
    Unsupported {
        /// The kernel and what it needs.
        what: &'static str,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
