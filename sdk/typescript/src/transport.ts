// gRPC channel to the server (@grpc/grpc-js): plaintext for http://, TLS for https://, the API key as a bearer
// token on every call. Messages are encoded by the caller (protobuf-es), so the channel moves bytes only.
import * as fs from "node:fs";
import * as grpc from "@grpc/grpc-js";

export interface TlsOptions {
  /** CA bundle (PEM) to trust: a Buffer with its contents, or a file path. Default: the system roots. */
  ca?: Buffer | string;
  /** Client certificate (PEM) for servers that require one: contents or a file path. */
  cert?: Buffer | string;
  /** The client certificate's private key (PEM): contents or a file path. */
  key?: Buffer | string;
}

export interface TransportOptions {
  apiKey?: string;
  tls?: TlsOptions;
}

export type GrpcError = grpc.ServiceError;

export class Transport {
  private readonly client: grpc.Client;
  private readonly metadata: grpc.Metadata;
  /** The same, with grpc-js's wait-for-ready flag (it lives on the metadata): the call waits for a connection. */
  private readonly metadataWaitForReady: grpc.Metadata;

  constructor(url: string, opts: TransportOptions) {
    const { address, secure } = parseUrl(url);
    const creds = secure
      ? grpc.credentials.createSsl(pem(opts.tls?.ca), pem(opts.tls?.key), pem(opts.tls?.cert))
      : grpc.credentials.createInsecure();
    this.client = new grpc.Client(address, creds, {
      // Reconnect within the SDK's retry range (100 ms to 30 s) instead of grpc's default of up to 120 s.
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 30_000,
      "grpc.keepalive_time_ms": 30_000,
      "grpc.keepalive_timeout_ms": 10_000,
      "grpc.max_receive_message_length": 64 * 1024 * 1024,
    });
    this.metadata = new grpc.Metadata();
    this.metadataWaitForReady = new grpc.Metadata({ waitForReady: true });
    if (opts.apiKey) {
      this.metadata.set("authorization", `Bearer ${opts.apiKey}`);
      this.metadataWaitForReady.set("authorization", `Bearer ${opts.apiKey}`);
    }
  }

  /** One unary call with an encoded request; resolves with the encoded response. */
  unary(
    method: string,
    request: Buffer,
    timeoutMs: number,
    waitForReady: boolean,
    onCall?: (call: grpc.ClientUnaryCall) => void,
  ): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const call = this.client.makeUnaryRequest<Buffer, Buffer>(
        method,
        (b) => b,
        (b) => b,
        request,
        waitForReady ? this.metadataWaitForReady : this.metadata,
        { deadline: Date.now() + timeoutMs },
        (err, resp) => (err ? reject(err) : resolve(resp!)),
      );
      onCall?.(call);
    });
  }

  /** Whether the channel has a connection now (so a failure came from the server, not from reaching it). */
  isConnected(): boolean {
    return this.client.getChannel().getConnectivityState(false) === grpc.connectivityState.READY;
  }

  /** Connects if needed and calls back once the channel is ready, or with an error after timeoutMs. */
  waitForReady(timeoutMs: number, callback: (err?: Error) => void): void {
    this.client.waitForReady(Date.now() + timeoutMs, callback);
  }

  close(): void {
    this.client.close();
  }
}

export function parseUrl(url: string): { address: string; secure: boolean } {
  const m = /^(https?):\/\/([^/]+)\/?$/.exec(url);
  if (m) return { address: m[2], secure: m[1] === "https" };
  if (/^[^/:]+:\d+$/.test(url) || /^\[[0-9a-fA-F:]+\]:\d+$/.test(url)) return { address: url, secure: false };
  throw new TypeError(`url: expected http://host:port or https://host:port, got ${JSON.stringify(url)}`);
}

function pem(v: Buffer | string | undefined): Buffer | null {
  if (v === undefined) return null;
  return Buffer.isBuffer(v) ? v : fs.readFileSync(v);
}

/** The gRPC status name of an error ("UNAVAILABLE"), or "UNKNOWN". */
export function statusName(err: unknown): string {
  const code = (err as GrpcError)?.code;
  return typeof code === "number" ? (grpc.status[code] ?? "UNKNOWN") : "UNKNOWN";
}

/** The server's `retry-after` hint in milliseconds, if it sent one (seconds, per the README). */
export function retryAfterMs(err: unknown): number | undefined {
  const md = (err as GrpcError)?.metadata;
  const v = md?.get("retry-after")?.[0];
  if (v === undefined) return undefined;
  const s = Number(typeof v === "string" ? v : v.toString());
  return Number.isFinite(s) && s >= 0 ? s * 1000 : undefined;
}
