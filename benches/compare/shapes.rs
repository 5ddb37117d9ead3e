//! Workload 6: the shapes of tokio's own runtime benchmarks (`benches/rt_current_thread.rs`
//! there), on our local executor, tokio's current-thread runtime and async-executor's
//! `LocalExecutor`: `yield_many` (200 tasks × 1,000 yields), `chained_spawn` (1,000 spawns,
//! each task spawning the next), `spawn_many` (10,000 spawns, every handle awaited).

use std::rc::Rc;

use futures::channel::oneshot;

use crate::common::{block_on, yield_once};
use crate::harness::{Contestant, Group, GroupResult, Role, Sample, measure, run_group};

const TASKS: u64 = 200;
const YIELDS: u64 = 1_000;
const CHAIN: u64 = 1_000;
const SPAWNS: u64 = 10_000;

type Tokio = tokio::runtime::Runtime;
type LocalEx = Rc<async_executor::LocalExecutor<'static>>;

fn tokio_rt() -> Tokio {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime")
}

fn ours_rt() -> structured_async::Runtime {
    structured_async::Runtime::new()
}

// yield_many ---------------------------------------------------------------------------------

fn yield_many_ours(rt: &structured_async::Runtime) -> Sample {
    measure(TASKS * YIELDS, || {
        rt.block_on(async {
            let handles: Vec<_> = (0..TASKS)
                .map(|_| {
                    structured_async::spawn_local(async {
                        for _ in 0..YIELDS {
                            structured_async::yield_now().await;
                        }
                    })
                })
                .collect();
            for h in handles {
                h.await;
            }
        });
    })
    .1
}

fn yield_many_tokio(rt: &Tokio) -> Sample {
    measure(TASKS * YIELDS, || {
        rt.block_on(async {
            let handles: Vec<_> = (0..TASKS)
                .map(|_| {
                    tokio::spawn(async {
                        for _ in 0..YIELDS {
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for h in handles {
                h.await.expect("task");
            }
        });
    })
    .1
}

fn yield_many_async_executor(ex: &LocalEx) -> Sample {
    measure(TASKS * YIELDS, || {
        block_on(ex.run(async {
            let handles: Vec<_> = (0..TASKS)
                .map(|_| {
                    ex.spawn(async {
                        for _ in 0..YIELDS {
                            yield_once().await;
                        }
                    })
                })
                .collect();
            for h in handles {
                h.await;
            }
        }));
    })
    .1
}

// chained_spawn ------------------------------------------------------------------------------

fn chain_ours(done: oneshot::Sender<()>, n: u64) {
    if n == 0 {
        let _ = done.send(());
    } else {
        drop(structured_async::spawn_local(async move {
            chain_ours(done, n - 1)
        }));
    }
}

fn chain_tokio(done: oneshot::Sender<()>, n: u64) {
    if n == 0 {
        let _ = done.send(());
    } else {
        drop(tokio::spawn(async move { chain_tokio(done, n - 1) }));
    }
}

fn chain_async_executor(ex: LocalEx, done: oneshot::Sender<()>, n: u64) {
    if n == 0 {
        let _ = done.send(());
    } else {
        let next = ex.clone();
        ex.spawn(async move { chain_async_executor(next, done, n - 1) })
            .detach();
    }
}

fn chained_spawn_ours(rt: &structured_async::Runtime) -> Sample {
    measure(CHAIN, || {
        rt.block_on(async {
            let (tx, rx) = oneshot::channel();
            chain_ours(tx, CHAIN);
            rx.await.expect("chain finished");
        });
    })
    .1
}

fn chained_spawn_tokio(rt: &Tokio) -> Sample {
    measure(CHAIN, || {
        rt.block_on(async {
            let (tx, rx) = oneshot::channel();
            chain_tokio(tx, CHAIN);
            rx.await.expect("chain finished");
        });
    })
    .1
}

fn chained_spawn_async_executor(ex: &LocalEx) -> Sample {
    measure(CHAIN, || {
        block_on(ex.run(async {
            let (tx, rx) = oneshot::channel();
            chain_async_executor(ex.clone(), tx, CHAIN);
            rx.await.expect("chain finished");
        }));
    })
    .1
}

// spawn_many ---------------------------------------------------------------------------------

fn spawn_many_ours(rt: &structured_async::Runtime) -> Sample {
    measure(SPAWNS, || {
        rt.block_on(async {
            let handles: Vec<_> = (0..SPAWNS)
                .map(|i| structured_async::spawn_local(async move { i }))
                .collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await;
            }
            sum
        })
    })
    .1
}

fn spawn_many_tokio(rt: &Tokio) -> Sample {
    measure(SPAWNS, || {
        rt.block_on(async {
            let handles: Vec<_> = (0..SPAWNS)
                .map(|i| tokio::spawn(async move { i }))
                .collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.expect("task");
            }
            sum
        })
    })
    .1
}

fn spawn_many_async_executor(ex: &LocalEx) -> Sample {
    measure(SPAWNS, || {
        block_on(ex.run(async {
            let handles: Vec<_> = (0..SPAWNS).map(|i| ex.spawn(async move { i })).collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await;
            }
            sum
        }))
    })
    .1
}

/// Runs this workload.
pub fn run(_quick: bool, rounds: usize) -> Vec<GroupResult> {
    type Shape = (
        &'static str,
        &'static str,
        fn(&structured_async::Runtime) -> Sample,
        fn(&Tokio) -> Sample,
        fn(&LocalEx) -> Sample,
    );
    let shapes: [Shape; 3] = [
        (
            "yield_many (200 tasks × 1,000 yields)",
            "yield",
            yield_many_ours,
            yield_many_tokio,
            yield_many_async_executor,
        ),
        (
            "chained_spawn (1,000)",
            "spawn",
            chained_spawn_ours,
            chained_spawn_tokio,
            chained_spawn_async_executor,
        ),
        (
            "spawn_many (10,000)",
            "spawn",
            spawn_many_ours,
            spawn_many_tokio,
            spawn_many_async_executor,
        ),
    ];
    shapes
        .into_iter()
        .map(|(case, unit, ours, tokio, async_ex)| {
            let (rt, trt, ex) = (ours_rt(), tokio_rt(), LocalEx::default());
            let contestants = vec![
                Contestant::new("ours, Runtime::spawn_local", Role::Ours, move || ours(&rt)),
                Contestant::new("tokio current-thread", Role::Peer, move || tokio(&trt)),
                Contestant::new("async-executor LocalExecutor", Role::Peer, move || {
                    async_ex(&ex)
                }),
            ];
            run_group(
                Group {
                    workload: "scheduler shapes",
                    case: case.to_owned(),
                    unit,
                    contestants,
                },
                rounds,
            )
        })
        .collect()
}
