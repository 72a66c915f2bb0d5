//! Which source serves which CPython version, decided here only: a static table (2.7,
//! 3.6–3.12, `tables.rs`), the target's own `_Py_DebugOffsets` read with a known shape
//! (3.13+, `debug_offsets.rs`), or nothing. Attaching (`target.rs`) and the tests
//! (`tests/common`'s `supported`, `tests/layouts.rs`) both ask [`source_for`].

use super::debug_offsets::{self, DebugShape, SHAPES};
use super::layout::Layout;
use super::tables;
use super::version::Version;
use anyhow::{bail, Result};

/// Where the layout of one version comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayoutSource {
    /// A static table (2.7, 3.6–3.12).
    Table(&'static Layout),
    /// The target's `_Py_DebugOffsets`, read with `shape`: its own minor version's
    /// (`newer: false`, 3.13–3.15), or for a newer 3.x the newest one (`newer: true`), used
    /// only when the table's anchors prove it compatible.
    DebugOffsets {
        shape: &'static DebugShape,
        newer: bool,
    },
    /// Too old, or a new major version.
    Unsupported,
}

/// The first version that describes itself in `_PyRuntime.debug_offsets`.
pub const FIRST_DEBUG_OFFSETS: (u64, u64) = (3, 13);

/// Where `version`'s layout comes from.
pub fn source_for(version: &Version) -> LayoutSource {
    if (version.major, version.minor) >= FIRST_DEBUG_OFFSETS {
        let newest = SHAPES[SHAPES.len() - 1];
        return match SHAPES.iter().find(|s| s.minor() == version.minor) {
            Some(shape) if version.major == 3 => LayoutSource::DebugOffsets {
                shape,
                newer: false,
            },
            None if version.major == 3 && version.minor > newest.minor() => {
                LayoutSource::DebugOffsets {
                    shape: newest,
                    newer: true,
                }
            }
            _ => LayoutSource::Unsupported,
        };
    }
    let v = (version.major, version.minor, version.patch);
    match tables::ALL.iter().find(|l| l.first <= v && v <= l.last) {
        Some(l) => LayoutSource::Table(l),
        None => LayoutSource::Unsupported,
    }
}

/// Whether this py-spy knows how to read `version`: from a table (2.7, 3.6–3.12) or from
/// the target's debug offsets with a shape of its own (3.13–3.15; a newer 3.x is tried at
/// attach, when its table can be checked).
pub fn is_known(version: &Version) -> bool {
    matches!(
        source_for(version),
        LayoutSource::Table(_) | LayoutSource::DebugOffsets { newer: false, .. }
    )
}

/// The layout a `_Py_DebugOffsets` table (`raw`, from its cookie) of `version` describes,
/// read with the shape [`source_for`] picks.
pub fn layout_from_debug_table(raw: &[u8], version: &Version) -> Result<Layout> {
    match source_for(version) {
        LayoutSource::DebugOffsets { shape, .. } => {
            debug_offsets::layout_from_table(raw, version, shape)
        }
        _ => bail!("Python {version} has no debug offsets we know how to read"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::python::layout::GilHolder;

    fn table(version: Version) -> &'static Layout {
        match source_for(&version) {
            LayoutSource::Table(l) => l,
            other => panic!("{version}: {other:?}"),
        }
    }

    #[test]
    fn tables_are_consistent() {
        for t in tables::ALL {
            t.check().unwrap();
        }
    }

    #[test]
    fn tables_are_in_version_order_without_gaps_or_overlaps() {
        for pair in tables::ALL.windows(2) {
            assert!(pair[0].last < pair[1].first, "{:?}", pair[1].first);
        }
    }

    #[test]
    fn picks_by_version() {
        // 3.7's GIL state moved in 3.7.4.
        let gil = |p| table(Version::new(3, 7, p)).runtime.gil;
        assert_eq!(gil(3), GilHolder::RuntimeTstateCurrent(1392));
        assert_eq!(gil(4), GilHolder::RuntimeTstateCurrent(1480));
        table(Version::new(2, 7, 18));
        table(Version::new(3, 11, 7));
        table(Version::new(3, 11, 2));
        table(Version::new(3, 12, 1));
        for unsupported in [(3, 5, 0), (2, 6, 9), (4, 0, 0)] {
            let (a, b, c) = unsupported;
            assert_eq!(
                source_for(&Version::new(a, b, c)),
                LayoutSource::Unsupported
            );
        }
        for (minor, shape) in [
            (13, &debug_offsets::SHAPE_3_13),
            (15, &debug_offsets::SHAPE_3_15),
        ] {
            assert_eq!(
                source_for(&Version::new(3, minor, 1)),
                LayoutSource::DebugOffsets {
                    shape,
                    newer: false
                }
            );
        }
        assert_eq!(
            source_for(&Version::new(3, 16, 0)),
            LayoutSource::DebugOffsets {
                shape: &debug_offsets::SHAPE_3_15,
                newer: true
            }
        );
        assert!(is_known(&Version::new(3, 14, 0)));
        assert!(!is_known(&Version::new(3, 16, 0)));
        assert!(!is_known(&Version::new(3, 5, 9)));
    }
}
