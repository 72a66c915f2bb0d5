//! Snapshot images: the memory one snapshot of a Python process reads (interpreter, thread
//! states, frames, code objects, strings, line tables, locals and the `threading` module's
//! names), recorded from a live process while it is paused, so that the same walker, code
//! reader and object reader can run on it again offline.
//!
//! This is the walker fuzzer's corpus (`tests/fuzz_walker.rs` damages images and decodes
//! them), and the shape a core file will take: [`ImageDecoder`] reads any [`Memory`].
//! Images are stored as bincode then zstd, read back with bounded sizes.

use anyhow::{bail, Context, Result};
use bincode::Options;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Read;

use super::os::memory::{ImageMemory, LiveMemory, Memory, RecordingMemory};
use super::python::code::CodeCache;
use super::python::debug_offsets;
use super::python::layout::Layout;
use super::python::locals::read_locals;
use super::python::objects::ObjectReader;
use super::python::registry::{self, LayoutSource};
use super::python::target::PythonTarget;
use super::python::thread_names::thread_names;
use super::python::version::Version;
use super::python::walker::{GilWords, RawThread, StackFault, Walker};
use crate::model::trace::{Frame, LocalVariable, Pid, StackTrace};

/// Most bytes an image may hold: a recording stops keeping reads beyond it, and a stored
/// image that claims more is refused.
pub const MAX_IMAGE_BYTES: usize = 64 << 20;
/// Shape of [`SnapshotImage`] as stored; an image of another shape is refused.
const IMAGE_FORMAT: u32 = 1;
/// Locals are shown in at most this many characters each (as `dump --locals`).
const LOCALS_MAX_LEN: isize = 128;

/// One recorded snapshot: where its interpreter is, and the memory it read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotImage {
    pub format: u32,
    /// The target's Python version (major, minor, patch): picks the layout's source.
    pub version: (u64, u64, u64),
    /// `_PyRuntime` (3.7+; its debug offsets on 3.13+) or `interp_head`.
    pub runtime: u64,
    /// The first interpreter state.
    pub interp: u64,
    /// Where the GIL holder is read (0: unknown), and the word that must be set for it to
    /// count (3.12+).
    pub gil_holder: u64,
    pub gil_locked: Option<u64>,
    /// `PyCode_Type`, when the binary names it.
    pub code_type: Option<u64>,
    /// (address, bytes), sorted and disjoint.
    pub regions: Vec<(u64, Vec<u8>)>,
}

impl SnapshotImage {
    /// Pause process `pid`, take one snapshot of every thread with locals and thread names
    /// through a recording of its memory, and resume it.
    pub fn record(pid: Pid) -> Result<SnapshotImage> {
        let live = LiveMemory::new(pid);
        let target = PythonTarget::find(pid, &live)?;
        let interp = target.interpreter_address(&live)?;
        let gil = target.gil_words(&live, interp);
        let process = remoteprocess::Process::new(pid)
            .with_context(|| format!("could not open process {pid}"))?;
        let lock = process
            .lock()
            .with_context(|| format!("could not pause process {pid}"))?;
        let rec = RecordingMemory::new(&live, MAX_IMAGE_BYTES);
        if let LayoutSource::DebugOffsets { .. } = registry::source_for(&target.version) {
            // The table the layout is read from is part of the image.
            debug_offsets::read_table(&rec, target.runtime)?;
        }
        let version = &target.version;
        let mut image = SnapshotImage {
            format: IMAGE_FORMAT,
            version: (version.major, version.minor, version.patch),
            runtime: target.runtime,
            interp,
            gil_holder: gil.holder,
            gil_locked: gil.locked,
            code_type: target.interpreter_binary.symbol("PyCode_Type"),
            regions: Vec::new(),
        };
        let decoded = ImageDecoder::with_layout(&image, target.layout).decode(&rec);
        drop(lock);
        decoded.with_context(|| format!("could not take a snapshot of process {pid}"))?;
        image.regions = rec.image().regions().to_vec();
        Ok(image)
    }

    /// The image's memory, ready to be read.
    pub fn memory(&self) -> ImageMemory {
        let mut m = ImageMemory::new();
        for (addr, bytes) in &self.regions {
            m.add(*addr, bytes.clone());
        }
        m.coalesce();
        m
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let raw = codec()
            .serialize(self)
            .context("could not encode the image")?;
        zstd::encode_all(&raw[..], 9).context("could not compress the image")
    }

    /// Read a stored image; a damaged or oversized one is an error.
    pub fn from_bytes(data: &[u8]) -> Result<SnapshotImage> {
        let mut raw = Vec::new();
        zstd::Decoder::new(data)
            .context("not a compressed snapshot image")?
            .take(MAX_IMAGE_BYTES as u64 * 2)
            .read_to_end(&mut raw)
            .context("the snapshot image does not decompress")?;
        let image: SnapshotImage = codec()
            .with_limit(MAX_IMAGE_BYTES as u64 * 2)
            .deserialize(&raw)
            .context("the snapshot image does not decode")?;
        if image.format != IMAGE_FORMAT {
            bail!(
                "snapshot image of format {}, not {IMAGE_FORMAT}",
                image.format
            );
        }
        Ok(image)
    }

    /// 3.13+: build the layout this image's `_Py_DebugOffsets` table describes, as attaching
    /// does, without keeping it (`Ok(false)` for a version read from a static table).
    pub fn check_debug_offsets(&self) -> Result<bool> {
        let version = self.version();
        match registry::source_for(&version) {
            LayoutSource::DebugOffsets { .. } => {
                let raw = debug_offsets::read_table(&self.memory(), self.runtime)?;
                registry::layout_from_debug_table(&raw, &version)?
                    .check()
                    .map_err(|e| anyhow::anyhow!(e))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn version(&self) -> Version {
        let (major, minor, patch) = self.version;
        Version::new(major, minor, patch)
    }
}

fn codec() -> impl Options {
    bincode::DefaultOptions::new().with_varint_encoding()
}

/// Decodes snapshots of one interpreter from any [`Memory`]: every thread's frames (code
/// objects, lines), locals and names, as `dump --locals` shows them. Keeps its walker and
/// code cache between calls, as a live capture does.
pub struct ImageDecoder {
    layout: &'static Layout,
    walker: Walker,
    codes: CodeCache,
    raw: Vec<RawThread>,
    locals_len: isize,
}

impl ImageDecoder {
    /// The decoder of `image`'s interpreter; its layout comes from where a live attach gets
    /// it (a table, or the debug offsets in the image).
    pub fn new(image: &SnapshotImage) -> Result<ImageDecoder> {
        let version = image.version();
        let layout = match registry::source_for(&version) {
            LayoutSource::Table(layout) => layout,
            LayoutSource::DebugOffsets { shape, .. } => {
                debug_offsets::read_layout(&image.memory(), image.runtime, &version, shape)?
            }
            LayoutSource::Unsupported => bail!("Python {version} is not supported"),
        };
        Ok(Self::with_layout(image, layout))
    }

    fn with_layout(image: &SnapshotImage, layout: &'static Layout) -> ImageDecoder {
        let gil = GilWords {
            holder: image.gil_holder,
            locked: image.gil_locked,
        };
        Self::for_interpreter(layout, image.interp, gil, image.code_type)
    }

    /// The decoder of the interpreter at `interp` laid out as `layout` (a core file's, found
    /// as attaching finds a live one's).
    pub fn for_interpreter(
        layout: &'static Layout,
        interp: u64,
        gil: GilWords,
        code_type: Option<u64>,
    ) -> ImageDecoder {
        let mut codes = CodeCache::default();
        codes.code_type = code_type;
        ImageDecoder {
            layout,
            walker: Walker::new(layout, interp, gil),
            codes,
            raw: Vec::new(),
            locals_len: LOCALS_MAX_LEN,
        }
    }

    /// Show each local in at most `len` characters (`dump --locals` shows 128 per `l`).
    pub fn set_locals_len(&mut self, len: isize) {
        self.locals_len = len;
    }

    /// Why each thread of the last [`ImageDecoder::decode`] has no frames, if it has none
    /// for a fault (in the order of its threads).
    pub fn faults(&self) -> Vec<Option<StackFault>> {
        self.raw.iter().map(|t| t.fault).collect()
    }

    /// Per thread of the last [`ImageDecoder::decode`], per frame: the address of the shim
    /// frame it was called from (3.12+), or 0.
    pub fn shims(&self) -> Vec<Vec<u64>> {
        self.raw
            .iter()
            .map(|t| t.frames.iter().map(|f| f.shim_addr).collect())
            .collect()
    }

    /// One snapshot of every thread in `mem`. A stack that cannot be read is a thread with
    /// no frames (the walker's fault is not kept); names that cannot be read are left out.
    pub fn decode(&mut self, mem: &dyn Memory) -> Result<Vec<StackTrace>> {
        let layout = self.layout;
        let codes = &mut self.codes;
        self.walker
            .snapshot_with(mem, &mut self.raw, |batch| codes.begin(layout, batch))?;
        let frames = self
            .raw
            .iter()
            .flat_map(|t| t.frames.iter().map(|f| f.code));
        self.codes.end(mem, layout, self.walker.batch(), frames);
        let names: HashMap<u64, String> = thread_names(
            &mut ObjectReader::new(mem, layout),
            self.walker.interp,
            self.raw.len(),
        )
        .unwrap_or_default();
        let mut out = Vec::with_capacity(self.raw.len());
        for t in &self.raw {
            let mut frames = Vec::new();
            if t.fault.is_none() {
                for raw in &t.frames {
                    let Ok(code) = self.codes.get(mem, layout, raw.code) else {
                        frames.clear();
                        break;
                    };
                    let locals: Vec<LocalVariable> =
                        read_locals(mem, layout, raw, &code, self.locals_len).unwrap_or_default();
                    frames.push(Frame {
                        name: code.qualname.to_string(),
                        filename: code.filename.to_string(),
                        module: None,
                        short_filename: None,
                        line: self.codes.line(layout, raw.code, raw.instr_offset),
                        locals: Some(locals),
                        is_entry: raw.is_entry,
                        is_shim_entry: raw.shim_entry,
                    });
                }
            }
            out.push(StackTrace {
                pid: 0,
                thread_id: t.thread_id,
                thread_name: names.get(&t.thread_id).cloned(),
                os_thread_id: (t.native_thread_id != 0).then_some(t.native_thread_id),
                active: true,
                owns_gil: t.holds_gil,
                frames,
                process_info: None,
            });
        }
        Ok(out)
    }
}
