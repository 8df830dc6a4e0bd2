//! Logs and traces: JSON logs on stdout, OpenTelemetry spans exported over OTLP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and W3C trace context carried from the HTTP edge through
//! every gRPC hop so that one client request is one trace.

use std::collections::HashMap;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("a global tracing subscriber is already installed: {0}")]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
}

/// Flushes buffered spans when dropped at the end of `main`.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(err) = self.provider.shutdown() {
            eprintln!("telemetry shutdown: {err}");
        }
    }
}

/// Installs logging and tracing for the process. Call once, from `main`, inside the runtime.
/// `RUST_LOG` filters (default `info`).
pub fn init(service_name: &'static str) -> Result<Telemetry, TelemetryError> {
    install_propagator();
    let mut provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service_name).build());
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?;
        provider = provider.with_batch_exporter(exporter);
    }
    let provider = provider.build();
    let tracer = provider.tracer(service_name);
    opentelemetry::global::set_tracer_provider(provider.clone());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false),
        )
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init()?;
    Ok(Telemetry { provider })
}

/// W3C trace context is the propagation format on every hop.
pub fn install_propagator() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
}

/// The remote parent named by incoming `traceparent` / `tracestate` values.
pub fn remote_context(
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) -> opentelemetry::Context {
    let mut carrier = HashMap::new();
    if let Some(value) = traceparent {
        carrier.insert(TRACEPARENT.to_owned(), value.to_owned());
    }
    if let Some(value) = tracestate {
        carrier.insert(TRACESTATE.to_owned(), value.to_owned());
    }
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&carrier))
}

/// Makes `span` a child of the remote parent, when the caller sent one.
pub fn adopt_remote_parent(
    span: &tracing::Span,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) {
    if traceparent.is_some() {
        // An invalid traceparent only means the span starts a new trace.
        let _ = span.set_parent(remote_context(traceparent, tracestate));
    }
}

/// The `traceparent` / `tracestate` pairs of the current span.
pub fn current_trace_headers() -> HashMap<String, String> {
    let context = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut carrier);
    });
    carrier
}

/// Writes the current span's trace context into outgoing gRPC metadata.
pub fn inject_into_metadata(metadata: &mut MetadataMap) {
    for (key, value) in current_trace_headers() {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            metadata.insert(key, value);
        }
    }
}

/// The span of one incoming gRPC call, child of the caller's span.
pub fn grpc_server_span(request: &tonic::codegen::http::Request<()>) -> tracing::Span {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let span = tracing::info_span!(
        "grpc",
        rpc = %request.uri().path(),
        request_id = header(crate::identity::REQUEST_ID).unwrap_or_default(),
    );
    adopt_remote_parent(&span, header(TRACEPARENT), header(TRACESTATE));
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    #[test]
    fn trace_context_flows_from_an_incoming_header_into_outgoing_metadata() {
        install_propagator();
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
            let incoming = format!("00-{trace_id}-00f067aa0ba902b7-01");
            let span = tracing::info_span!("http");
            adopt_remote_parent(&span, Some(&incoming), None);
            let _entered = span.enter();
            let mut metadata = MetadataMap::new();
            inject_into_metadata(&mut metadata);
            let outgoing = metadata.get(TRACEPARENT).unwrap().to_str().unwrap();
            assert!(outgoing.contains(trace_id), "{outgoing}");
            assert_ne!(outgoing, incoming, "the hop gets a span id of its own");
            let remote = remote_context(Some(outgoing), None);
            assert_eq!(
                remote.span().span_context().trace_id().to_string(),
                trace_id
            );
        });
    }
}
