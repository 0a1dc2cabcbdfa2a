//! Maps pinned under a name from `dataplane_common::map_names`.
//!
//! aya-ebpf's `#[map(name = ...)]` takes a string literal, so the name is
//! written once more here; [`pinned_map!`] checks at compile time that the
//! literal is the constant user space opens the pin by, so the two sides
//! cannot drift apart.

/// Declares a map whose pin name is `$literal`, and fails the build unless
/// `$literal` equals the `dataplane_common::map_names` constant `$name`.
macro_rules! pinned_map {
    (
        $name:path = $literal:tt,
        $(#[$attr:meta])*
        $vis:vis static $ident:ident: $ty:ty = $init:expr;
    ) => {
        const _: () = assert!(
            $crate::pinned::same_name($name, $literal),
            concat!(
                "map ",
                $literal,
                " is not named as its dataplane_common::map_names constant"
            )
        );
        $(#[$attr])*
        #[aya_ebpf::macros::map(name = $literal)]
        $vis static $ident: $ty = $init;
    };
}

pub(crate) use pinned_map;

/// `a == b`, usable in constants.
pub(crate) const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
