//! Fetches each URL given, all at once on a tokio runtime, and prints
//! `STATUS BODY` per URL in argument order.

#[tokio::main]
async fn main() {
    let client = reqwest::Client::new();
    let fetches = std::env::args().skip(1).map(|url| {
        let client = client.clone();
        tokio::spawn(async move {
            match client.get(&url).send().await {
                Ok(r) => format!("{} {}", r.status().as_u16(), r.text().await.unwrap_or_else(|e| format!("<{e}>"))),
                Err(e) => format!("error {e}"),
            }
        })
    });
    let handles: Vec<_> = fetches.collect();
    let mut failed = false;
    for h in handles {
        let line = h.await.expect("task");
        failed |= line.starts_with("error");
        println!("{line}");
    }
    std::process::exit(i32::from(failed));
}
