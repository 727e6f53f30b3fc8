//! Holds the README's Rust snippets, compiled and run as doctests so they
//! stay true. This crate depends on every published crate of the workspace,
//! so the snippets can use them all; the runnable examples are its
//! `[[example]]` targets.

/// The README's Rust snippets.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
