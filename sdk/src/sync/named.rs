//! What the three lock types share, written once: their constructor, their
//! budgets, `into_inner`, `get_mut` and `Debug`.

/// Implements the shared part of lock type `$Lock`, whose inner lock is
/// `$Inner` (a type naming `T`), of kind `$kind`; `$read` reads the value
/// of a lock `l` in the doc examples.
macro_rules! named {
    ($Lock:ident, $Inner:ty, $kind:expr, $read:literal) => {
        impl<T> $Lock<T> {
            #[doc = concat!(
                "A lock named `name` (locks of one name share their figures) around\n",
                "`value`; no budget.\n\n```\n",
                "let l = overrun::sync::", stringify!($Lock), "::new(\"new_doc\", 5);\n",
                "assert_eq!(", $read, ", 5);\n```"
            )]
            #[track_caller]
            pub fn new(name: &'static str, value: T) -> Self {
                Self {
                    site: LockSite::of(name, $kind, Location::caller()),
                    limits: Limits::default(),
                    inner: <$Inner>::new(value),
                }
            }

            #[doc = concat!(
                "The longest an acquisition may wait: one that waits longer is a\n",
                "`wait` violation, reported as soon as the budget passes. Panics on a\n",
                "malformed literal (give `overrun::duration!(\"1ms\")` to have it\n",
                "checked at compile time).\n\n```\n",
                "let l = overrun::sync::", stringify!($Lock), "::new(\"wait_doc\", 1).wait_budget(\"1ms\");\n",
                "assert_eq!(", $read, ", 1);\n```"
            )]
            #[track_caller]
            pub fn wait_budget(mut self, limit: impl TimeLimit) -> Self {
                self.limits.set_wait(self.site, limit.nanos());
                self
            }

            #[doc = concat!(
                "The longest a guard may be held: a hold past it is a `hold`\n",
                "violation, reported while the guard is still held (within twice the\n",
                "budget or 100 ms, whichever is longer). Holds are measured (a clock\n",
                "read at each end) only on a lock with a hold budget.\n\n```\n",
                "let l = overrun::sync::", stringify!($Lock), "::new(\"hold_doc\", 1).hold_budget(\"200us\");\n",
                "assert_eq!(", $read, ", 1);\n```"
            )]
            #[track_caller]
            pub fn hold_budget(mut self, limit: impl TimeLimit) -> Self {
                self.limits.set_hold(self.site, limit.nanos());
                self
            }

            #[doc = concat!(
                "The value, the lock consumed.\n\n```\n",
                "let l = overrun::sync::", stringify!($Lock), "::new(\"into_inner_doc\", 3);\n",
                "assert_eq!(l.into_inner(), 3);\n```"
            )]
            pub fn into_inner(self) -> T {
                self.inner.into_inner()
            }
        }

        impl<T: ?Sized> $Lock<T> {
            #[doc = concat!(
                "The value, through `&mut` (no locking needed).\n\n```\n",
                "let mut l = overrun::sync::", stringify!($Lock), "::new(\"get_mut_doc\", 1);\n",
                "*l.get_mut() += 1;\n",
                "assert_eq!(", $read, ", 2);\n```"
            )]
            pub fn get_mut(&mut self) -> &mut T {
                self.inner.get_mut()
            }
        }

        impl<T: ?Sized + fmt::Debug> fmt::Debug for $Lock<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($Lock))
                    .field("name", &self.site.name)
                    .field("inner", &&self.inner)
                    .finish()
            }
        }
    };
}

pub(super) use named;
