//! Tasks: the thread of one chain, fed by channels (combining their watermarks and aligning
//! barriers) or by a source (stamping event time, making watermarks, injecting barriers).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::checkpoint::{Control, Mode};
use weir_core::operator::{stamp_batch, Assign, Source, SourceSnapshot, SOURCE_SNAPSHOT};
use weir_core::record::{Batch, Message, Record};
use weir_core::status::{RunState, UpstreamGone};
use weir_core::time::{Clock, InputWatermarks};

use crate::chain::Chain;
use crate::route::Envelope;

/// The shortest sleep of a rate-limited source between batches.
const RATE_TICK: Duration = Duration::from_millis(1);

/// Settings of an input task beyond its chain.
pub struct InputTask {
    /// The merged input channel.
    pub rx: Receiver<Envelope>,
    /// Number of input channels.
    pub inputs: usize,
    /// Checkpoint completion notices.
    pub control: Option<Receiver<Control>>,
    /// Barrier alignment mode.
    pub mode: Mode,
}

/// Barrier alignment state of an input task.
struct Alignment {
    id: u64,
    dir: Arc<Path>,
    seen: Vec<bool>,
}

/// Where a task thread's time goes: busy (everything but waiting), idle (waiting for input),
/// backpressured (waiting for room downstream, measured by the routes), added to the head
/// node's counters about ten times a second.
struct TaskTime {
    subtask: usize,
    since: std::time::Instant,
    idle_ns: u64,
}

/// Counts the time until it is dropped as idle.
struct Idle<'a>(&'a mut u64, std::time::Instant);

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        *self.0 += self.1.elapsed().as_nanos() as u64;
    }
}

impl TaskTime {
    fn new(chain: &Chain) -> TaskTime {
        crate::route::take_backpressured_ns();
        TaskTime { subtask: chain.subtask, since: std::time::Instant::now(), idle_ns: 0 }
    }

    fn idle(&mut self) -> Idle<'_> {
        Idle(&mut self.idle_ns, std::time::Instant::now())
    }

    /// Adds the time since the last flush to the head node, and notes the links' state
    /// sizes, at most ten times a second; returns whether it did.
    fn flush_now_and_then(&mut self, chain: &Chain) -> bool {
        let due = self.since.elapsed() >= Duration::from_millis(100);
        if due {
            self.flush(chain);
        }
        due
    }

    /// Adds the time since the last flush now (at the task's end, so that none is lost).
    fn flush(&mut self, chain: &Chain) {
        let wall = self.since.elapsed();
        let wall = wall.as_nanos() as u64;
        let backpressured = crate::route::take_backpressured_ns();
        let idle = self.idle_ns.min(wall);
        let busy = wall.saturating_sub(idle).saturating_sub(backpressured);
        if let Some(head) = chain.links.first() {
            head.metrics.note_task_time(self.subtask, busy, idle, backpressured.min(wall - idle));
            if let Some(cpu) = weir_core::status::thread_cpu_ns() {
                head.metrics.note_task_cpu(self.subtask, cpu);
            }
        }
        chain.note_state_sizes();
        self.since = std::time::Instant::now();
        self.idle_ns = 0;
    }
}

/// Runs a task that reads channels: combines watermarks, aligns checkpoint barriers, feeds
/// the chain, fires processing time, and closes at the end of every input.
pub fn run_input_task(mut chain: Chain, task: InputTask, clock: Arc<dyn Clock>, run: Arc<RunState>) -> anyhow::Result<()> {
    let InputTask { rx, inputs, control, mode } = task;
    let mut control = control.unwrap_or(crossbeam_channel::never());
    let mut watermarks = InputWatermarks::new(inputs);
    let mut ended = vec![false; inputs];
    let mut aligning: Option<Alignment> = None;
    // Messages held back from channels that already delivered the barrier being aligned,
    // and messages to replay (in order) once alignment completes.
    let mut held: VecDeque<Envelope> = VecDeque::new();
    let mut replay: VecDeque<Envelope> = VecDeque::new();
    let mut time = TaskTime::new(&chain);
    loop {
        time.flush_now_and_then(&chain);
        if run.failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let msg = if let Some(m) = replay.pop_front() {
            m
        } else {
            let timeout = chain.next_processing_timer().map(|t| {
                let now = clock.now_ms();
                Duration::from_millis((t - now).clamp(0, 1000) as u64)
            });
            if timeout.is_some_and(|d| d.is_zero()) {
                chain.on_processing_time(clock.now_ms())?;
                continue;
            }
            // At least once a second around the loop, so that an idle task's time is counted.
            let tick = crossbeam_channel::after(timeout.unwrap_or(Duration::from_secs(1)));
            let _waiting = time.idle();
            crossbeam_channel::select! {
                recv(rx) -> m => m.map_err(|_| UpstreamGone)?,
                recv(control) -> c => {
                    match c {
                        Ok(Control::Complete(id)) => chain.notify_complete(id)?,
                        Ok(Control::Trigger { .. }) => {}
                        // The coordinator is gone: no more notices.
                        Err(_) => control = crossbeam_channel::never(),
                    }
                    continue;
                }
                recv(tick) -> _ => continue,
            }
        };
        let (ch, m) = msg;
        let ch = ch as usize;
        if mode == Mode::ExactlyOnce && aligning.as_ref().is_some_and(|a| a.seen[ch]) {
            held.push_back((ch as u32, m));
            continue;
        }
        match m {
            Message::Data(b) => {
                let b = if inputs == 1 { b } else { combine_marks(&mut watermarks, ch, b) };
                chain.feed(b)?;
            }
            Message::Watermark(w) => {
                if let Some(w) = watermarks.update(ch, w) {
                    chain.feed(Batch { records: Vec::new(), marks: vec![(0, w)] })?;
                }
            }
            Message::Idle(idle) => {
                if let Some(w) = watermarks.set_idle(ch, idle) {
                    chain.feed(Batch { records: Vec::new(), marks: vec![(0, w)] })?;
                }
            }
            Message::Barrier(id, dir) => {
                let a = aligning.get_or_insert_with(|| Alignment { id, dir: dir.clone(), seen: vec![false; inputs] });
                if a.id == id {
                    a.seen[ch] = true;
                }
            }
            Message::End => {
                ended[ch] = true;
                if let Some(w) = watermarks.end(ch) {
                    chain.feed(Batch { records: Vec::new(), marks: vec![(0, w)] })?;
                }
            }
        }
        // Alignment completes when every input delivered the barrier or ended.
        if let Some(a) = aligning.take() {
            if a.seen.iter().zip(&ended).all(|(s, e)| *s || *e) {
                chain.checkpoint(a.id, &a.dir)?;
                replay.extend(held.drain(..));
            } else {
                aligning = Some(a);
            }
        }
        if watermarks.all_ended() && replay.is_empty() && aligning.is_none() {
            chain.close()?;
            // Commit notices may still come for checkpoints taken before the end.
            while let Ok(Control::Complete(id)) = control.try_recv() {
                chain.notify_complete(id)?;
            }
            time.flush(&chain);
            return Ok(());
        }
    }
}

/// Translates channel `ch`'s marks into marks of the combined watermark.
fn combine_marks(watermarks: &mut InputWatermarks, ch: usize, b: Batch) -> Batch {
    if b.marks.is_empty() {
        return b;
    }
    let marks = b.marks.iter().filter_map(|&(i, w)| watermarks.update(ch, w).map(|c| (i, c))).collect();
    Batch { records: b.records, marks }
}

/// How a source task stamps event time and makes watermarks.
pub struct SourceTime {
    /// Extracts or assigns the event time; an error sends the record to dead-letter.
    pub assign: Option<Assign>,
    /// The generator (none: no watermarks).
    pub generator: Option<weir_core::time::WatermarkGenerator>,
    /// Periodic emission interval (None: after every event).
    pub interval: Option<Duration>,
    /// Idle timeout.
    pub idle_timeout: Option<Duration>,
}

/// Checkpoint wiring of a source task.
#[derive(Debug, Default)]
pub struct SourceControl {
    /// Triggers and completion notices from the coordinator.
    pub control: Option<Receiver<Control>>,
    /// Incremented when the source ends (no barrier can pass it after that).
    pub ended: Option<Arc<AtomicUsize>>,
    /// Set to stop (after a savepoint): end without the final watermark.
    pub stop: Option<Arc<AtomicBool>>,
}

fn source_control(source: &mut dyn Source, time: &SourceTime, chain: &mut Chain, ctl: &SourceControl) -> anyhow::Result<()> {
    let Some(rx) = &ctl.control else { return Ok(()) };
    while let Ok(c) = rx.try_recv() {
        match c {
            Control::Trigger { id, dir } => {
                let d = chain.link_dir(&dir, 0);
                std::fs::create_dir_all(&d)?;
                let snap = SourceSnapshot { position: source.position(), watermark: time.generator.clone() };
                source.snapshotted(id);
                std::fs::write(d.join(SOURCE_SNAPSHOT), serde_json::to_vec(&snap)?)?;
                chain.checkpoint(id, &Arc::from(dir.as_path()))?;
            }
            Control::Complete(id) => {
                source.checkpoint_complete(id)?;
                chain.notify_complete(id)?;
            }
        }
    }
    Ok(())
}

/// Per-split watermarks between polls: splits that ended, or have had no record for
/// `idle_timeout`, leave the minimum (a record brings an idle split back); returns the
/// watermark when that moved it.
fn split_progress(
    g: &mut weir_core::time::WatermarkGenerator,
    seen: &mut [(u32, Instant)],
    records: &[Record],
    ended: Vec<u32>,
    idle_timeout: Option<Duration>,
) -> Option<i64> {
    let now = Instant::now();
    for r in records {
        if let Some(e) = seen.iter_mut().find(|(s, _)| *s == r.origin.split) {
            e.1 = now;
        }
    }
    for s in ended {
        g.set_split_active(s, false);
    }
    if let Some(t) = idle_timeout {
        for (s, last) in seen.iter() {
            // A split in this poll was seen just now, so only quiet ones pass.
            if now.duration_since(*last) >= t {
                g.set_split_active(*s, false);
            }
        }
    }
    g.advance()
}

/// Runs a source task: poll, stamp, watermark, throttle, inject barriers, push through the
/// chain.
pub fn run_source_task(
    mut source: Box<dyn Source>,
    mut time: SourceTime,
    mut chain: Chain,
    batch_size: usize,
    rate: Option<f64>,
    ctl: SourceControl,
    run: Arc<RunState>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut emitted: u64 = 0;
    let mut last_periodic = Instant::now();
    let mut last_data = Instant::now();
    let mut idle = false;
    let metrics = chain.links[0].metrics.clone();
    // A source of several splits gets a watermark per split; each split's last record, for
    // its idleness.
    let splits = source.splits();
    let mut split_seen: Vec<(u32, Instant)> = splits.iter().map(|s| (*s, Instant::now())).collect();
    if let (false, Some(g)) = (splits.is_empty(), time.generator.as_mut()) {
        g.set_splits(&splits);
    }
    let mut task_time = TaskTime::new(&chain);
    let subtask = chain.subtask;
    let report = |source: &dyn Source| {
        if let Some(p) = source.progress() {
            metrics.note_source(subtask, p);
        }
    };
    report(source.as_ref());
    loop {
        if task_time.flush_now_and_then(&chain) {
            report(source.as_ref());
        }
        if run.failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        source_control(source.as_mut(), &time, &mut chain, &ctl)?;
        if ctl.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
            // Stop with savepoint: no final watermark, so nothing fires that the savepoint
            // holds; sinks commit what they have.
            if let Some(e) = &ctl.ended {
                e.fetch_add(1, Ordering::SeqCst);
            }
            return chain.close();
        }
        let max = match rate {
            Some(r) => {
                let due = (started.elapsed().as_secs_f64() * r) as u64 + 1;
                let allowed = due.saturating_sub(emitted).min(batch_size as u64) as usize;
                if allowed == 0 {
                    // Sleep till the next record is due, but at least RATE_TICK: at high
                    // rates each batch then carries a tick's records instead of one or two,
                    // which costs every downstream task a wake-up per batch.
                    let wait = Duration::from_secs_f64(1.0 / r).clamp(RATE_TICK, Duration::from_millis(50));
                    let _waiting = task_time.idle();
                    std::thread::sleep(wait);
                    continue;
                }
                allowed
            }
            None => batch_size,
        };
        let Some((mut records, wait)) = source.poll(max)? else { break };
        if !split_seen.is_empty() {
            if let Some(g) = time.generator.as_mut() {
                if let Some(w) = split_progress(g, &mut split_seen, &records, source.take_ended_splits(), time.idle_timeout) {
                    chain.feed(Batch { records: Vec::new(), marks: vec![(0, w)] })?;
                }
            }
        }
        let refused = source.take_refused();
        if !refused.is_empty() {
            // Read by the source, never made records (lines too long): straight to the dead letters.
            metrics.records_in.fetch_add(refused.len() as u64, Ordering::Relaxed);
            chain.send_dead(0, refused)?;
            last_data = Instant::now();
        }
        if records.is_empty() {
            if let Some(t) = time.idle_timeout {
                if !idle && last_data.elapsed() >= t {
                    idle = true;
                    chain.idle(true)?;
                }
            }
            let _waiting = task_time.idle();
            std::thread::sleep(wait);
            continue;
        }
        if idle {
            idle = false;
            chain.idle(false)?;
        }
        last_data = Instant::now();
        emitted += records.len() as u64;
        let ingest = weir_core::time::mono_ns();
        let assign = &mut time.assign;
        let (marks, dead) = stamp_batch(
            &mut records,
            |r| {
                r.origin.ingest_ns = ingest;
                assign.as_mut().map_or(Ok(()), |a| a(r))
            },
            time.generator.as_mut(),
            time.interval.map(|iv| (iv, &mut last_periodic)),
        );
        // Records that never reach the chain still count as read by the source.
        metrics.records_in.fetch_add(dead.len() as u64, Ordering::Relaxed);
        chain.send_dead(0, dead)?;
        // The source link itself is an identity operator; push through the chain.
        chain.feed(Batch { records, marks })?;
    }
    report(source.as_ref());
    if let Some(e) = &ctl.ended {
        e.fetch_add(1, Ordering::SeqCst);
    }
    // End of a bounded input: the final watermark fires everything.
    chain.feed(Batch { records: Vec::new(), marks: vec![(0, weir_core::time::MAX_WATERMARK)] })?;
    chain.close()?;
    task_time.flush(&chain);
    Ok(())
}
