/*
 * spyext: a tiny CPython extension used as a fixture for native (C) stack tests.
 *
 *   spyext.spin(seconds)   hot C loop in spyext_hot_loop(), holding the GIL
 *   spyext.call_back(fn, n) spyext_call_back() calls the Python callable fn n times
 *
 * Builds against CPython 2.7 and 3.6 .. 3.15.  Build with build_ext.py (same folder), i.e.
 *   cc -O2 -g -fno-omit-frame-pointer -fPIC -shared -I<python include> spyext.c -o spyext<EXT_SUFFIX>
 * spyext_hot_loop and spyext_call_back are global, default-visibility and noinline, so they
 * appear by name in .dynsym (and .symtab) and as their own frames in a native stack.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <time.h>

#define SPYEXT_EXPORT __attribute__((noinline, used, visibility("default")))

static double spyext_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Busy-loops for `seconds` without releasing the GIL; returns the number of rounds. Almost all
 * of the time is spent in this function's own instructions (the clock is read only every
 * 200000 iterations), so a native sample's innermost frame is spyext_hot_loop. */
SPYEXT_EXPORT long spyext_hot_loop(double seconds)
{
    volatile unsigned long acc = 1;
    long rounds = 0;
    double deadline = spyext_now() + seconds;
    do {
        unsigned long i;
        for (i = 0; i < 200000; i++) {
            acc = acc * 6364136223846793005UL + 1442695040888963407UL;
            acc ^= acc >> 17;
        }
        rounds++;
    } while (spyext_now() < deadline);
    return rounds;
}

/* Calls fn() n times from C; returns 0, or -1 with a Python exception set. */
SPYEXT_EXPORT int spyext_call_back(PyObject *fn, long n)
{
    long i;
    for (i = 0; i < n; i++) {
        PyObject *res = PyObject_CallObject(fn, NULL);
        if (res == NULL)
            return -1;
        Py_DECREF(res);
    }
    return 0;
}

static PyObject *spyext_spin(PyObject *self, PyObject *args)
{
    double seconds;
    long rounds;
    (void)self;
    if (!PyArg_ParseTuple(args, "d:spin", &seconds))
        return NULL;
    rounds = spyext_hot_loop(seconds);
    return PyLong_FromLong(rounds);
}

static PyObject *spyext_call_back_py(PyObject *self, PyObject *args)
{
    PyObject *fn;
    long n;
    (void)self;
    if (!PyArg_ParseTuple(args, "Ol:call_back", &fn, &n))
        return NULL;
    if (!PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "call_back: fn must be callable");
        return NULL;
    }
    if (spyext_call_back(fn, n) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef spyext_methods[] = {
    {"spin", spyext_spin, METH_VARARGS, "spin(seconds): hot C loop holding the GIL"},
    {"call_back", spyext_call_back_py, METH_VARARGS, "call_back(fn, n): call fn() n times from C"},
    {NULL, NULL, 0, NULL}
};

#if PY_MAJOR_VERSION >= 3
static struct PyModuleDef spyext_module = {
    PyModuleDef_HEAD_INIT,
    "spyext",
    "native-stack test fixture",
    -1,
    spyext_methods,
    NULL, NULL, NULL, NULL
};

PyMODINIT_FUNC PyInit_spyext(void)
{
    return PyModule_Create(&spyext_module);
}
#else
PyMODINIT_FUNC initspyext(void)
{
    (void)Py_InitModule3("spyext", spyext_methods, "native-stack test fixture");
}
#endif
