use structured_async::structured;

#[structured(fast)]
async fn unknown() {}

#[structured(yields)]
async fn yields_without_type() {}

#[structured(strict, strict)]
async fn twice() {}

#[structured(strict yields = u8)]
async fn missing_comma() {}

fn main() {}
