//! The daemon: keeps the interfaces filtered with the lists in force.
pub mod compile;
