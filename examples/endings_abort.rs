//! The `endings` example, built by its test with `-C panic=abort`: an
//! aborting panic still writes the report.

include!("endings_program.rs");
