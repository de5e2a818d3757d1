//! `clawback bench http`: what the gateway adds to an OpenAI-compatible
//! `/v1/chat/completions` request, compared with calling the provider
//! directly.
//!
//! Starts the same instant OpenAI-format provider as `bench agent` (a
//! five-chunk streamed reply, its own time per request noted), the real
//! gateway (this binary) with the endpoint enabled, and measures, side by
//! side: the provider called directly over HTTP, and the same exchange
//! through the gateway (non-streaming and streaming answers), first one at
//! a time, then open-loop at a fixed rate (requests sent on schedule,
//! whether or not earlier ones finished, so a gateway that falls behind
//! shows it in its latency instead of hiding it by slowing the client).

use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde_json::json;

use super::bench_agent::{ProviderTimes, start_provider};
use super::bench_protocol::micros;

const TOKEN: &str = "bench-http-token";

#[derive(Args)]
pub struct HttpBenchArgs {
    /// Sequential requests measured per path.
    #[arg(long, default_value_t = 500)]
    requests: u32,
    /// Target rate of the open-loop runs (requests per second).
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Length of each open-loop run.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
}

pub fn run(args: HttpBenchArgs) -> anyhow::Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("# clawback bench http\n");
    println!("machine: {}\n", super::bench::machine_description());
    let times: ProviderTimes = Default::default();
    let provider = runtime.block_on(start_provider(times.clone()))?;
    let state_dir = super::bench::tempdir_in(None)?;
    std::fs::write(
        state_dir.path().join("config.json5"),
        format!(
            "{{ gateway: {{ http: {{ endpoints: {{ chatCompletions: {{ enabled: true }} }} }} }},\n  agents: {{ defaults: {{ model: 'bench/instant' }} }},\n  models: {{ providers: {{ bench: {{ baseUrl: 'http://{provider}/v1', apiKey: 'sk-bench', models: [{{ id: 'instant' }}] }} }} }} }}\n"
        ),
    )?;
    let (_gateway, address) = super::bench_protocol::spawn_gateway(state_dir.path(), TOKEN)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let direct_url = format!("http://{provider}/v1/chat/completions");
    let gateway_url = format!("http://{address}/v1/chat/completions");

    runtime.block_on(async {
        for n in 0..50 {
            call(&client, &direct_url, "sk-bench", false, &format!("warm-d{n}")).await?;
            call(&client, &gateway_url, TOKEN, false, &format!("warm-g{n}")).await?;
        }
        let mut direct = histogram()?;
        let mut plain = histogram()?;
        let mut streamed = histogram()?;
        let mut overhead = histogram()?;
        for n in 0..args.requests {
            direct.record(micros_of(call(&client, &direct_url, "sk-bench", false, &format!("d{n}")).await?))?;
            let message = format!("g{n}");
            let total = call(&client, &gateway_url, TOKEN, false, &message).await?;
            plain.record(micros_of(total))?;
            let provider_time = times.lock().expect("times").get(&message).copied().unwrap_or_default();
            overhead.record(micros_of(total.saturating_sub(provider_time)))?;
            streamed.record(micros_of(call(&client, &gateway_url, TOKEN, true, &format!("s{n}")).await?))?;
        }
        println!("| measure | p50 | p99 | note |");
        println!("|---|---:|---:|---|");
        let row = |name: &str, histogram: &Histogram<u64>, note: &str| {
            println!(
                "| {name} | {} | {} | {note} |",
                micros(histogram.value_at_quantile(0.5)),
                micros(histogram.value_at_quantile(0.99))
            );
        };
        row(&format!("provider called directly ({} requests, one at a time)", args.requests), &direct, "the baseline");
        row("through `/v1/chat/completions`, JSON answer", &plain, "a new session per request");
        row("through `/v1/chat/completions`, SSE until `[DONE]`", &streamed, "");
        row("added per request (gateway time minus the provider's)", &overhead, "JSON answer");
        println!(
            "| added, p50 and p99 differences (gateway - direct) | {} | {} | JSON answer |",
            micros(plain.value_at_quantile(0.5).saturating_sub(direct.value_at_quantile(0.5))),
            micros(plain.value_at_quantile(0.99).saturating_sub(direct.value_at_quantile(0.99)))
        );
        for (name, url, key) in [("provider directly", &direct_url, "sk-bench"), ("through the gateway", &gateway_url, TOKEN)] {
            let (latency, sent, done, elapsed) = open_loop(&client, url, key, args.rate, args.seconds).await?;
            println!(
                "| open loop at {} req/s for {} s, {name} | {} | {} | {done} of {sent} answered, {:.0} answers/s |",
                args.rate,
                args.seconds,
                micros(latency.value_at_quantile(0.5)),
                micros(latency.value_at_quantile(0.99)),
                f64::from(done) / elapsed.as_secs_f64()
            );
        }
        anyhow::Ok(())
    })?;
    Ok(std::process::ExitCode::SUCCESS)
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 120_000_000, 3)?)
}

fn micros_of(duration: Duration) -> u64 {
    duration.as_micros().max(1) as u64
}

/// One request, read to the end; its time.
async fn call(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    stream: bool,
    message: &str,
) -> anyhow::Result<Duration> {
    let body = json!({"model": "openclaw", "stream": stream,
                      "messages": [{"role": "user", "content": message}]});
    let started = Instant::now();
    let response = client.post(url).bearer_auth(key).json(&body).send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{url} answered {}",
        response.status()
    );
    let text = response.text().await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(!text.is_empty(), "{url} answered an empty body");
    Ok(elapsed)
}

/// Sends requests on a fixed schedule for `seconds`; the latencies of
/// those answered, how many were sent and answered, and the time taken.
async fn open_loop(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    rate: u32,
    seconds: u32,
) -> anyhow::Result<(Histogram<u64>, u32, u32, Duration)> {
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = started + interval * n;
        tokio::time::sleep_until(due.into()).await;
        let (client, url, key) = (client.clone(), url.to_owned(), key.to_owned());
        tasks.push(tokio::spawn(async move {
            // Latency from when the request was due, so a client that
            // could not send on time does not flatter the server.
            call(&client, &url, &key, false, &format!("open-{n}")).await?;
            anyhow::Ok(due.elapsed())
        }));
    }
    let mut latency = histogram()?;
    let mut done = 0u32;
    for task in tasks {
        if let Ok(Ok(elapsed)) = task.await {
            latency.record(micros_of(elapsed))?;
            done += 1;
        }
    }
    Ok((latency, total, done, started.elapsed()))
}
