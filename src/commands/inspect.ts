/**
 * `nla-ar inspect`: what the native side looks like on this machine: platform, the CPU and CUDA variants found
 * (and where node-gyp-build looked), the CUDA probe (run in a child process), the CPU kernels chosen at run time,
 * and which backend `device: 'auto'` picks. The first thing to run when the package does not load.
 */
import { nativeReport } from '../native';

export function inspect(args: { json: boolean }): void {
  const r = nativeReport();
  if (args.json) {
    console.log(JSON.stringify(r, null, 2));
    return;
  }
  const p = r.platform;
  console.log(`platform   ${p.os}-${p.arch}, ${p.libc}, Node ${p.node}, N-API ${p.napi}`);
  console.log(`cpu        ${r.cpu.file ?? `not found (${r.cpu.error ?? 'no binary'})`}`);
  for (const s of r.cpu.searched) console.log(`             looked in ${s}`);
  console.log(`           kernels: ${r.cpu.kernels ?? `unavailable (${r.cpu.error})`}`);
  const probe = r.cuda.probe;
  console.log(`cuda       ${probe?.file ?? 'not found'}`);
  for (const s of r.cuda.searched) console.log(`             looked in ${s}`);
  if (probe) {
    const what = probe.ok ? `${probe.deviceCount} device(s)` : probe.error;
    console.log(`           probe (child process, ${probe.ms} ms): ${probe.crashed ? 'CRASHED: ' : ''}${what}`);
  } else console.log('           probe: not run (CUDA builds exist for Linux only)');
  console.log(`auto       ${r.auto.backend ? `${r.auto.backend} (${(r.auto.reasons ?? []).join('; ')})` : `fails: ${r.auto.error}`}`);
  const env = Object.entries(r.env);
  if (env.length) console.log(`env        ${env.map(([k, v]) => `${k}=${v}`).join(' ')}`);
}
