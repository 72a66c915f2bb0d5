//! Output formats. Each module turns samples (or one snapshot) into one format.

pub mod dump;
