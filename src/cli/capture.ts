// `vhost-switch capture PORT -w FILE`: a port's frames as a pcap file that tcpdump, tshark and Wireshark read
// (`-w -` streams to stdout: `vhost-switch capture vm1 -w - | tcpdump -nr -`). Ends after --count frames, on
// Ctrl-C, or when the port goes away; says how many frames were captured and how many the switch had to drop
// because the reader fell behind.
import fs from 'node:fs';
import http from 'node:http';
import { Option, type Command } from 'commander';
import { ApiError, UnreachableError } from './client.js';
import { numeric, type CliContext, type CliHost } from './context.js';

export function registerCapture(program: Command, host: CliHost): void {
  program
    .command('capture')
    .description("the port's frames as a pcap file (tcpdump, tshark, Wireshark); Ctrl-C stops")
    .argument('<port>')
    .requiredOption('-w, --write <file>', 'the pcap file, or - for stdout (`-w - | tcpdump -nr -`)')
    .option('-c, --count <n>', 'stop after N frames')
    .addOption(new Option('--direction <dir>', 'in: frames the port sends into the switch; out: frames the switch sends to it').choices(['in', 'out', 'both']).default('both'))
    .option('-s, --snaplen <bytes>', 'bytes kept of each frame (64-65535, default 65535)')
    .action(host.action((ctx: CliContext, port: string, o: CaptureOptions) => captureCommand(ctx, port, o)));
}

interface CaptureOptions {
  write: string;
  count?: string;
  direction: string;
  snaplen?: string;
}

export async function captureCommand(ctx: CliContext, port: string, values: CaptureOptions, stdout: NodeJS.WritableStream = process.stdout): Promise<number> {
  const q = new URLSearchParams();
  for (const k of ['count', 'direction', 'snaplen'] as const) if (values[k] !== undefined) q.set(k, String(numeric(values[k])));
  const path = `/v1/ports/${encodeURIComponent(port)}/capture${q.size ? `?${q}` : ''}`;
  const toStdout = values.write === '-';

  return new Promise<number>((resolve, reject) => {
    const req = http.request({ socketPath: ctx.client.socketPath, method: 'GET', path }, (res) => {
      if (res.statusCode !== 200) {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => {
          let body: ApiError['body'];
          try {
            body = JSON.parse(text) as ApiError['body'];
          } catch {
            body = undefined;
          }
          reject(new ApiError(res.statusCode ?? 0, body, `HTTP ${res.statusCode}: ${text.trim()}`));
        });
        return;
      }
      const out = toStdout ? stdout : fs.createWriteStream(values.write!);
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.pipe(out as NodeJS.WritableStream, { end: !toStdout });
      const stopOnSignal = () => req.destroy();
      process.once('SIGINT', stopOnSignal);
      process.once('SIGTERM', stopOnSignal);
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        process.off('SIGINT', stopOnSignal);
        process.off('SIGTERM', stopOnSignal);
        const frames = res.trailers['capture-frames'];
        const dropped = res.trailers['capture-dropped'];
        const where = toStdout ? 'stdout' : values.write;
        ctx.err(
          frames !== undefined
            ? `${frames} frames captured to ${where}, ${dropped} dropped${dropped !== '0' ? ' (the reader fell behind the port)' : ''}\n`
            : `capture stopped; ${bytes} bytes written to ${where}\n`,
        );
        resolve(0);
      };
      const done = () => (toStdout ? finish() : (out as fs.WriteStream).close(() => finish()));
      res.on('end', done);
      res.on('close', done);  // also when we hung up (Ctrl-C) or the daemon went away
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (['ENOENT', 'ECONNREFUSED', 'EACCES', 'ENOTSOCK'].includes(err.code ?? '')) reject(new UnreachableError(ctx.client.socketPath, err));
      else if (err.code === 'ECONNRESET') return;  // we hung up (Ctrl-C): the response's close reports
      else reject(err);
    });
    req.end();
  });
}
