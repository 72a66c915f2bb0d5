//! Turning a snapshot's raw frames into code objects and lines (the code cache), and reading
//! locals for `dump --locals`.

use super::*;

impl PythonSpy {
    /// Turn raw threads into samples: code objects, lines, locals.
    pub(super) fn decode(
        &mut self,
        threads: &[RawThread],
        out: &mut Vec<ThreadSample>,
    ) -> Result<()> {
        let layout = self.target.layout;

        // Before 3.8 thread states have no OS thread id: it is found through the pthread_t.
        if layout.thread.native_thread_id.is_none()
            && (self.walker.threads_changed
                || threads
                    .iter()
                    .any(|t| !self.pthread_tids.contains_key(&t.thread_id)))
        {
            let ids: Vec<u64> = threads.iter().map(|t| t.thread_id).collect();
            if self.walker.threads_changed || self.pthread_tids.len() < ids.len() {
                self.pthread_tids = threads::map_pthreads(&self.mem, self.pid, &ids);
            }
        }
        let unknown_thread = threads
            .iter()
            .any(|t| !self.thread_names.contains_key(&t.thread_id));
        if self.walker.threads_changed || unknown_thread {
            let due = self
                .names_looked_up
                .is_none_or(|t| t.elapsed() >= NAME_REFRESH || self.walker.threads_changed);
            if due {
                let mut reader = ObjectReader::new(&self.mem, layout);
                if let Ok(names) = thread_names(&mut reader, self.walker.interp, threads.len()) {
                    self.thread_names = names.into_iter().collect();
                }
                self.names_looked_up = Some(Instant::now());
            }
        }

        let mut used = 0;
        for thread in threads {
            if self.config.gil_only && !thread.holds_gil {
                continue;
            }
            if used == out.len() {
                out.push(ThreadSample::default());
            }
            let slot = &mut out[used];
            used += 1;
            slot.thread_id = thread.thread_id;
            slot.os_thread_id = if thread.native_thread_id != 0 {
                Some(thread.native_thread_id)
            } else {
                self.pthread_tids.get(&thread.thread_id).copied()
            };
            slot.holds_gil = thread.holds_gil;
            slot.active = true;
            slot.truncated = thread.truncated;
            slot.fault = thread.fault;
            slot.partial = thread.partial;
            let top = thread
                .frames
                .first()
                .map_or((0, 0, 0), |f| (f.addr, f.code, f.instr_offset));
            // (A thread seen for the first time has not been seen to move.)
            slot.moved = thread.fault.is_none()
                && self
                    .last_tops
                    .insert(thread.thread_id, top)
                    .is_some_and(|last| last != top);
            slot.frames.clear();
            if slot.fault.is_some() && !slot.partial {
                continue;
            }
            for raw in &thread.frames {
                let code = match self.codes.get(&self.mem, layout, raw.code) {
                    Ok(c) => c,
                    Err(_) => {
                        self.stats.bad_frames += 1;
                        slot.fault = Some(StackFault::BadCode);
                        slot.partial = false;
                        slot.frames.clear();
                        break;
                    }
                };
                let line = match self.config.lineno {
                    LineNo::NoLine => 0,
                    LineNo::First => code.first_line,
                    LineNo::LastInstruction => self.codes.line(layout, raw.code, raw.instr_offset),
                };
                let locals = if self.config.dump_locals > 0 {
                    Some(self.locals(raw, &code).unwrap_or_default())
                } else {
                    None
                };
                slot.frames.push(CodeFrame {
                    code,
                    addr: raw.addr,
                    line,
                    is_entry: raw.is_entry,
                    shim_entry: raw.shim_entry,
                    shim_addr: raw.shim_addr,
                    locals,
                });
            }
            // Up to 3.10 a running generator's frame links to its caller only while it runs:
            // a chain that ends at one was read after it yielded (a thread's first frame is a
            // function called from C, never a generator). From 3.11 the walker knows where a
            // chain must end.
            if layout.frames == FrameShape::FrameObject
                && slot.fault.is_none()
                && slot
                    .frames
                    .last()
                    .is_some_and(|f| f.code.flags & CO_GENERATOR_LIKE != 0)
            {
                slot.fault = Some(StackFault::Changed);
                slot.partial = true;
            }
        }
        out.truncate(used);
        Ok(())
    }

    /// Local variables of a frame (see [`read_locals`]).
    pub(super) fn locals(&mut self, raw: &RawFrame, code: &CodeInfo) -> Result<Vec<LocalVariable>> {
        let max_len = (128 * self.config.dump_locals) as isize;
        read_locals(&self.mem, self.target.layout, raw, code, max_len)
    }
}
