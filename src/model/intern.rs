//! Interning frames, stacks, threads and error reasons into dense ids, in memory and with no
//! file behind it: the session writer sends each new id to the file once; a live view (such
//! as `top`) can aggregate by these ids and look them up again without writing anything.
//! Ids are dense, from 0, in order of first appearance: the session file's ids.

use std::collections::HashMap;
use std::sync::Arc;

use super::fasthash::FastMap;

/// A frame as stored: what identifies it for interning.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FrameKey {
    pub function: Arc<str>,
    pub qualname: Arc<str>,
    pub filename: Arc<str>,
    /// The file relative to its package root, when it could be worked out at capture time.
    pub short_filename: Option<Arc<str>>,
    pub line: i32,
    pub first_line: i32,
    pub module: Option<Arc<str>>,
}

/// A thread: its process and Python thread id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ThreadKey {
    pub pid: i32,
    pub thread_id: u64,
}

/// Why a thread's stack could not be read: a short stable `kind`, a `message` for people,
/// and the stack of the innermost frames read before the chain broke off, if any.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorKey {
    pub kind: String,
    pub message: String,
    pub partial: Option<u32>,
}

/// An id, and whether this call gave it out for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interned {
    pub id: u32,
    pub new: bool,
}

/// The interning tables. Lookups by id are kept for frames, stacks and threads.
#[derive(Debug, Default)]
pub struct Interner {
    processes: HashMap<i32, u32>,
    threads: FastMap<ThreadKey, u32>,
    thread_keys: Vec<ThreadKey>,
    names: FastMap<u32, String>,
    frames: HashMap<FrameKey, u32>,
    frame_keys: Vec<FrameKey>,
    stacks: FastMap<Arc<[u32]>, u32>,
    stack_frames: Vec<Arc<[u32]>>,
    errors: HashMap<ErrorKey, u32>,
}

/// `key`'s id in `map`, giving the next one when it is new.
fn intern<K: std::hash::Hash + Eq, S: std::hash::BuildHasher>(
    map: &mut HashMap<K, u32, S>,
    key: &K,
    owned: impl FnOnce() -> K,
) -> Interned {
    if let Some(id) = map.get(key) {
        return Interned {
            id: *id,
            new: false,
        };
    }
    let id = map.len() as u32;
    map.insert(owned(), id);
    Interned { id, new: true }
}

impl Interner {
    pub fn new() -> Interner {
        Interner::default()
    }

    pub fn process(&mut self, pid: i32) -> Interned {
        intern(&mut self.processes, &pid, || pid)
    }

    /// The id of a process already interned.
    pub fn process_id(&self, pid: i32) -> Option<u32> {
        self.processes.get(&pid).copied()
    }

    /// The id of a thread already interned.
    pub fn thread_id(&self, key: ThreadKey) -> Option<u32> {
        self.threads.get(&key).copied()
    }

    pub fn thread(&mut self, key: ThreadKey) -> Interned {
        let got = intern(&mut self.threads, &key, || key);
        if got.new {
            self.thread_keys.push(key);
        }
        got
    }

    /// Note `name` as thread `id`'s name; true when it differs from the last one noted.
    pub fn rename(&mut self, id: u32, name: &str) -> bool {
        if self.names.get(&id).map(String::as_str) == Some(name) {
            return false;
        }
        self.names.insert(id, name.to_string());
        true
    }

    pub fn frame(&mut self, key: &FrameKey) -> Interned {
        let got = intern(&mut self.frames, key, || key.clone());
        if got.new {
            self.frame_keys.push(key.clone());
        }
        got
    }

    /// A stack: frame ids, innermost first.
    pub fn stack(&mut self, frames: &[u32]) -> Interned {
        if let Some(id) = self.stacks.get(frames) {
            return Interned {
                id: *id,
                new: false,
            };
        }
        let id = self.stacks.len() as u32;
        let shared: Arc<[u32]> = Arc::from(frames);
        self.stacks.insert(shared.clone(), id);
        self.stack_frames.push(shared);
        Interned { id, new: true }
    }

    pub fn error(&mut self, key: &ErrorKey) -> Interned {
        intern(&mut self.errors, key, || key.clone())
    }

    /// The frame of an id this interner gave out.
    pub fn frame_key(&self, id: u32) -> Option<&FrameKey> {
        self.frame_keys.get(id as usize)
    }

    /// The frame ids of a stack this interner gave out, innermost first.
    pub fn stack_frames(&self, id: u32) -> Option<&[u32]> {
        self.stack_frames.get(id as usize).map(|s| &s[..])
    }

    /// The thread of an id this interner gave out, and its last name.
    pub fn thread_key(&self, id: u32) -> Option<(ThreadKey, Option<&str>)> {
        let key = *self.thread_keys.get(id as usize)?;
        Some((key, self.names.get(&id).map(String::as_str)))
    }

    pub fn frames(&self) -> usize {
        self.frame_keys.len()
    }

    pub fn stacks(&self) -> usize {
        self.stack_frames.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(name: &str, line: i32) -> FrameKey {
        FrameKey {
            function: Arc::from(name),
            qualname: Arc::from(name),
            filename: Arc::from("app.py"),
            short_filename: None,
            line,
            first_line: 1,
            module: None,
        }
    }

    #[test]
    fn ids_are_dense_stable_and_looked_up_again() {
        let mut i = Interner::new();
        let a = i.frame(&frame("a", 1));
        let b = i.frame(&frame("b", 2));
        assert_eq!((a, b.id), (Interned { id: 0, new: true }, 1));
        assert_eq!(i.frame(&frame("a", 1)), Interned { id: 0, new: false });
        assert_eq!(
            i.frame(&frame("a", 3)).id,
            2,
            "another line is another frame"
        );
        assert_eq!(&*i.frame_key(1).unwrap().function, "b");
        let s = i.stack(&[0, 1]);
        assert_eq!(s, Interned { id: 0, new: true });
        assert_eq!(i.stack(&[1, 0]).id, 1, "order matters");
        assert_eq!(i.stack(&[0, 1]), Interned { id: 0, new: false });
        assert_eq!(i.stack_frames(1), Some(&[1u32, 0][..]));
        let t = ThreadKey {
            pid: 7,
            thread_id: 9,
        };
        assert_eq!(i.thread(t), Interned { id: 0, new: true });
        assert!(i.rename(0, "main") && !i.rename(0, "main") && i.rename(0, "renamed"));
        assert_eq!(i.thread_key(0), Some((t, Some("renamed"))));
        assert_eq!(i.process(7), Interned { id: 0, new: true });
        assert_eq!(i.process_id(7), Some(0));
        let e = ErrorKey {
            kind: "k".into(),
            message: "m".into(),
            partial: Some(0),
        };
        assert_eq!(i.error(&e).id, 0);
        assert!(!i.error(&e).new);
        assert_eq!((i.frames(), i.stacks()), (3, 2));
    }
}
