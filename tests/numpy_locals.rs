//! numpy scalars among locals are shown by value, as py-spy 0.4 shows them. Needs a Python
//! with numpy: `PYSPY_NUMPY_PYTHON` (`.ci/run` makes one; required in CI).

mod common;

use common::*;

#[test]
fn numpy_scalars_by_value() {
    let Ok(python) = std::env::var("PYSPY_NUMPY_PYTHON") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must set PYSPY_NUMPY_PYTHON to a Python with numpy"
        );
        report(
            "numpy_scalars_by_value",
            &[],
            &[("all".into(), "PYSPY_NUMPY_PYTHON not set".into())],
        );
        return;
    };
    let target = spawn(std::path::Path::new(&python), "numpy_locals.py", &[]);
    let (code, out, err) = run_py_spy(&[
        "dump",
        "--pid",
        &target.pid.to_string(),
        "--json",
        "--locals",
    ]);
    assert_eq!(code, 0, "{err}");
    let traces: Vec<py_spy::StackTrace> = serde_json::from_str(&out).unwrap();
    let frame = &traces[0].frames[0];
    assert_eq!(frame.name, "hold");
    assert_eq!(frame.line, line_of("numpy_locals.py", "HOLD_LINE"));
    let got: Vec<(String, String)> = frame
        .locals
        .as_ref()
        .unwrap()
        .iter()
        .map(|l| (l.name.clone(), l.repr.clone().unwrap()))
        .collect();
    let want = [
        ("flag", "true"),
        ("u8", "200"),
        ("u16", "60000"),
        ("u32", "4000000000"),
        ("u64", "9223372036854775808"),
        ("i8", "-5"),
        ("i16", "-300"),
        ("i32", "-70000"),
        ("i64", "-7"),
        ("f32", "1.5"),
        ("f64", "2.25"),
    ];
    for (i, (name, repr)) in want.iter().enumerate() {
        assert_eq!((got[i].0.as_str(), got[i].1.as_str()), (*name, *repr));
    }
    // Types without a reader are shown by type and address.
    let c = &frame.locals.as_ref().unwrap()[want.len()];
    assert_eq!(c.name, "c128");
    assert_eq!(
        c.repr.as_deref().unwrap(),
        format!("<numpy.complex128 at {:#x}>", c.addr)
    );
    report("numpy_scalars_by_value", &[python], &[]);
}
