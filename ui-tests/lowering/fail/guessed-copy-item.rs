// `iter()` usually yields references; this one yields owned values with a `Drop`. The
// lowering would drop `job` at the await instead of at the end of the iteration, so the guess
// is checked and refused at the binding.
use structured_async::structured;

struct Job(String);

impl Drop for Job {
    fn drop(&mut self) {}
}

struct Queue;

impl Queue {
    fn iter(&self) -> impl Iterator<Item = Job> {
        std::iter::once(Job(String::new()))
    }
}

#[structured]
async fn run(q: &Queue) {
    for job in q.iter() {
        let _ = job.0.len();
        std::future::ready(()).await;
    }
}

fn main() {}
