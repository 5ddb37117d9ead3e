//! `nursery!` inside `#[structured]` fns: the nursery borrows the fn's arguments and locals.

use structured_async::{block_on, nursery, structured, yield_now};

#[structured]
async fn sum_chunks(data: &[u64], chunk: usize) -> u64 {
    let offset = 1000;
    let parts = nursery!(|n| {
        let handles: Vec<_> = data
            .chunks(chunk)
            .map(|c| {
                n.spawn(async move {
                    yield_now().await;
                    c.iter().sum::<u64>()
                })
            })
            .collect();
        let mut acc = 0;
        for h in handles {
            acc += h.await;
        }
        acc
    })
    .await;
    yield_now().await;
    parts + offset
}

struct Grid {
    cells: Vec<u32>,
}

impl Grid {
    #[structured]
    async fn bump_rows(&mut self, width: usize) -> Result<usize, String> {
        let len = self.cells.len();
        let rows = nursery!(|n| {
            for row in self.cells.chunks_mut(width) {
                n.spawn(async move {
                    yield_now().await;
                    row.iter_mut().for_each(|c| *c += 1);
                    Ok(())
                });
            }
            Ok::<_, String>(len / width)
        })
        .await?;
        Ok(rows)
    }
}

#[test]
fn a_nursery_borrows_the_arguments_of_a_structured_fn() {
    let data: Vec<u64> = (1..=100).collect();
    assert_eq!(block_on(sum_chunks(&data, 7)), 6050);
}

#[test]
fn a_nursery_splits_self_in_a_structured_method() {
    let mut grid = Grid { cells: vec![0; 12] };
    assert_eq!(block_on(grid.bump_rows(4)), Ok(3));
    assert_eq!(grid.cells, vec![1; 12]);
}
