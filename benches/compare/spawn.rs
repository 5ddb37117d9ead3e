//! Workload 1: spawn + join of N children, ready at once or pending once, and a tree of
//! scopes three deep.

use futures::StreamExt as _;

use crate::common::{ChildKind, PendOnce, Ready, block_on};
use crate::harness::{Contestant, Group, GroupResult, Role, Sample, measure, run_group};

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn floor<K: ChildKind>(n: u64) -> Sample {
    measure(n, || {
        block_on(async {
            let children: Vec<K::Fut> = (0..n).map(K::make).collect();
            let mut sum = 0;
            for child in children {
                sum += child.await;
            }
            sum
        })
    })
    .1
}

fn futures_unordered<K: ChildKind>(n: u64) -> Sample {
    measure(n, || {
        block_on(async {
            let mut set = futures::stream::FuturesUnordered::new();
            for i in 0..n {
                set.push(K::make(i));
            }
            let mut sum = 0;
            while let Some(v) = set.next().await {
                sum += v;
            }
            sum
        })
    })
    .1
}

fn buffered_unordered<K: ChildKind>(n: u64) -> Sample {
    measure(n, || {
        block_on(async {
            let mut set = futures_buffered::FuturesUnordered::new();
            for i in 0..n {
                set.push(K::make(i));
            }
            let mut sum = 0;
            while let Some(v) = set.next().await {
                sum += v;
            }
            sum
        })
    })
    .1
}

fn buffered_bounded<K: ChildKind>(n: u64) -> Sample {
    measure(n, || {
        block_on(async {
            let mut set = futures_buffered::FuturesUnorderedBounded::new(n as usize);
            for i in 0..n {
                set.push(K::make(i));
            }
            let mut sum = 0;
            while let Some(v) = set.next().await {
                sum += v;
            }
            sum
        })
    })
    .1
}

fn tokio_joinset<K: ChildKind>(rt: &tokio::runtime::Runtime, n: u64) -> Sample {
    measure(n, || {
        rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..n {
                set.spawn(K::make(i));
            }
            let mut sum = 0;
            while let Some(v) = set.join_next().await {
                sum += v.expect("child panicked");
            }
            sum
        })
    })
    .1
}

fn tokio_joinset_local<K: ChildKind>(rt: &tokio::runtime::Runtime, n: u64) -> Sample {
    let local = tokio::task::LocalSet::new();
    measure(n, || {
        local.block_on(rt, async {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..n {
                set.spawn_local(K::make(i));
            }
            let mut sum = 0;
            while let Some(v) = set.join_next().await {
                sum += v.expect("child panicked");
            }
            sum
        })
    })
    .1
}

fn moro_scope<K: ChildKind>(n: u64) -> Sample {
    measure(n, || {
        block_on(moro::async_scope!(|scope| {
            for i in 0..n {
                drop(scope.spawn(K::make(i)));
            }
        }))
    })
    .1
}

fn local_executor<K: ChildKind>(n: u64) -> Sample {
    measure(n, || {
        let ex = async_executor::LocalExecutor::new();
        block_on(ex.run(async {
            let tasks: Vec<_> = (0..n).map(|i| ex.spawn(K::make(i))).collect();
            let mut sum = 0;
            for task in tasks {
                sum += task.await;
            }
            sum
        }))
    })
    .1
}

/// async-scoped's one safe entry point, `scope_and_block`, needs tokio's multi-thread
/// runtime (it calls `block_in_place`); with one worker thread, the children run there.
fn async_scoped<K: ChildKind>(rt: &tokio::runtime::Runtime, n: u64) -> Sample {
    let _entered = rt.enter();
    measure(n, || {
        let ((), outputs) = async_scoped::TokioScope::scope_and_block(|scope| {
            for i in 0..n {
                scope.spawn(K::make(i));
            }
        });
        outputs
            .into_iter()
            .map(|r| r.expect("child panicked"))
            .sum::<u64>()
    })
    .1
}

fn ours_nursery<K: ChildKind>(rt: &structured_async::Runtime, n: u64) -> Sample {
    measure(n, || {
        rt.block_on(structured_async::nursery!(|s| {
            for i in 0..n {
                drop(s.spawn(K::make(i)));
            }
        }))
    })
    .1
}

/// The same nursery on the harness's minimal `block_on`, as the combinators above run.
fn ours_nursery_plain<K: ChildKind>(n: u64) -> Sample {
    measure(n, || {
        block_on(structured_async::nursery!(|s| {
            for i in 0..n {
                drop(s.spawn(K::make(i)));
            }
        }))
    })
    .1
}

/// The largest `n` async-scoped runs at (see [`group`]).
const ASYNC_SCOPED_MAX: u64 = 100_000;

fn group<K: ChildKind>(n: u64) -> Group {
    let rt = structured_async::Runtime::new();
    let mut contestants = vec![
        Contestant::new(
            "ours, nursery! on Runtime::block_on",
            Role::Ours,
            move || ours_nursery::<K>(&rt, n),
        ),
        Contestant::new(
            "ours, nursery! on a minimal block_on",
            Role::Ours,
            move || ours_nursery_plain::<K>(n),
        ),
        Contestant::new("Vec awaited in turn", Role::Floor, move || floor::<K>(n)),
        Contestant::new("futures FuturesUnordered", Role::Peer, move || {
            futures_unordered::<K>(n)
        }),
        Contestant::new("futures-buffered FuturesUnordered", Role::Peer, move || {
            buffered_unordered::<K>(n)
        }),
        Contestant::new(
            "futures-buffered FuturesUnorderedBounded",
            Role::Peer,
            move || buffered_bounded::<K>(n),
        ),
    ];
    let rt = current_thread();
    contestants.push(Contestant::new(
        "tokio JoinSet::spawn",
        Role::Peer,
        move || tokio_joinset::<K>(&rt, n),
    ));
    let rt = current_thread();
    contestants.push(Contestant::new(
        "tokio JoinSet::spawn_local",
        Role::Peer,
        move || tokio_joinset_local::<K>(&rt, n),
    ));
    contestants.push(Contestant::new(
        "moro async_scope!",
        Role::Peer,
        move || moro_scope::<K>(n),
    ));
    contestants.push(Contestant::new(
        "async-executor LocalExecutor",
        Role::Peer,
        move || local_executor::<K>(n),
    ));
    // async-scoped's cost per child grows with n (about 2 µs at 10k, 27 µs at 100k): at 1M
    // one run would take minutes, so it is measured up to 100k only.
    if n <= ASYNC_SCOPED_MAX {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        contestants.push(Contestant::new(
            "async-scoped (tokio, 1 worker)",
            Role::Peer,
            move || async_scoped::<K>(&rt, n),
        ));
    }
    Group {
        workload: "spawn + join",
        case: format!("{} × {}", n, K::NAME),
        unit: "child",
        contestants,
    }
}

/// `branch`³ leaves: a scope of `branch` scopes of `branch` scopes of `branch` children.
fn nested_floor<K: ChildKind>(branch: u64) -> Sample {
    measure(branch * branch * branch, || {
        block_on(async {
            let mut sum = 0;
            let outer: Vec<_> = (0..branch)
                .map(|a| async move {
                    let mid: Vec<_> = (0..branch)
                        .map(|b| async move {
                            let leaves: Vec<_> = (0..branch)
                                .map(|c| K::make((a * branch + b) * branch + c))
                                .collect();
                            let mut s = 0;
                            for leaf in leaves {
                                s += leaf.await;
                            }
                            s
                        })
                        .collect();
                    let mut s = 0;
                    for m in mid {
                        s += m.await;
                    }
                    s
                })
                .collect();
            for o in outer {
                sum += o.await;
            }
            sum
        })
    })
    .1
}

fn nested_buffered<K: ChildKind>(branch: u64) -> Sample {
    use futures_buffered::FuturesUnordered as Set;
    measure(branch * branch * branch, || {
        block_on(async {
            let mut outer = Set::new();
            for a in 0..branch {
                outer.push(async move {
                    let mut mid = Set::new();
                    for b in 0..branch {
                        mid.push(async move {
                            let mut leaves = Set::new();
                            for c in 0..branch {
                                leaves.push(K::make((a * branch + b) * branch + c));
                            }
                            leaves.fold(0, |s, v| async move { s + v }).await
                        });
                    }
                    mid.fold(0, |s, v| async move { s + v }).await
                });
            }
            outer.fold(0, |s, v| async move { s + v }).await
        })
    })
    .1
}

fn nested_unordered<K: ChildKind>(branch: u64) -> Sample {
    use futures::stream::FuturesUnordered as Set;
    measure(branch * branch * branch, || {
        block_on(async {
            let outer: Set<_> = (0..branch)
                .map(|a| async move {
                    let mid: Set<_> = (0..branch)
                        .map(|b| async move {
                            let leaves: Set<_> = (0..branch)
                                .map(|c| K::make((a * branch + b) * branch + c))
                                .collect();
                            leaves.fold(0, |s, v| async move { s + v }).await
                        })
                        .collect();
                    mid.fold(0, |s, v| async move { s + v }).await
                })
                .collect();
            outer.fold(0, |s, v| async move { s + v }).await
        })
    })
    .1
}

fn nested_moro<K: ChildKind>(branch: u64) -> Sample {
    // moro's scope body borrows the variables it names: each inner scope sits in an
    // `async move` block that owns its copy of the loop indices.
    measure(branch * branch * branch, || {
        block_on(moro::async_scope!(|outer| {
            for a in 0..branch {
                drop(outer.spawn(async move {
                    moro::async_scope!(|mid| {
                        for b in 0..branch {
                            drop(mid.spawn(async move {
                                moro::async_scope!(|leaves| {
                                    for c in 0..branch {
                                        drop(leaves.spawn(K::make((a * branch + b) * branch + c)));
                                    }
                                })
                                .await
                            }));
                        }
                    })
                    .await
                }));
            }
        }))
    })
    .1
}

fn nested_ours<K: ChildKind>(rt: &structured_async::Runtime, branch: u64) -> Sample {
    use structured_async::nursery;
    measure(branch * branch * branch, || {
        rt.block_on(nursery!(|outer| {
            for a in 0..branch {
                drop(outer.spawn(nursery!(move |mid| {
                    for b in 0..branch {
                        drop(mid.spawn(nursery!(move |leaves| {
                            for c in 0..branch {
                                drop(leaves.spawn(K::make((a * branch + b) * branch + c)));
                            }
                        })));
                    }
                })));
            }
        }))
    })
    .1
}

fn nested_group<K: ChildKind>(branch: u64) -> Group {
    let rt = structured_async::Runtime::new();
    Group {
        workload: "spawn + join",
        case: format!(
            "tree {branch}³ = {} × {}",
            branch * branch * branch,
            K::NAME
        ),
        unit: "child",
        contestants: vec![
            Contestant::new("ours, nursery! 3 deep", Role::Ours, move || {
                nested_ours::<K>(&rt, branch)
            }),
            Contestant::new("Vec of Vecs awaited in turn", Role::Floor, move || {
                nested_floor::<K>(branch)
            }),
            Contestant::new("futures FuturesUnordered", Role::Peer, move || {
                nested_unordered::<K>(branch)
            }),
            Contestant::new("futures-buffered FuturesUnordered", Role::Peer, move || {
                nested_buffered::<K>(branch)
            }),
            Contestant::new("moro async_scope!", Role::Peer, move || {
                nested_moro::<K>(branch)
            }),
        ],
    }
}

/// Runs every group of this workload, smallest first (each group's runtimes are dropped
/// before the next one starts).
pub fn run(quick: bool, rounds: usize) -> Vec<GroupResult> {
    let sizes: &[u64] = if quick {
        &[10_000, 100_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    let mut out = Vec::new();
    for &n in sizes {
        out.push(run_group(group::<Ready>(n), rounds));
        out.push(run_group(group::<PendOnce>(n), rounds));
    }
    out.push(run_group(nested_group::<PendOnce>(46), rounds));
    out
}
