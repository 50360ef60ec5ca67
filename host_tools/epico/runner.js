#!/usr/bin/env node
// Emulated Pico: the official rp2 MicroPython on rp2040js (npm, pinned in package.json), with the gaps
// of the stock emulator handled here (docs/epico.md): the bootrom's flash erase/program on a flash
// array kept in a file, USB CDC OUT completed only when the host has bytes, pacing to wall time, PIO
// stepped by elapsed cycles / clock divider, GPIO readback and pulls, watchdog and machine.reset()
// rebuilding the chip (flash and watchdog scratch kept, reset reason set).
//
// Started by host_tools/pumpctl/epico.py. Channels: stdin/stdout carry the USB CDC bytes (host <->
// device); the socket at --ctl-fd carries JSON lines: commands in ({"adc": [ch, code]}, {"pin": [n, 0|1|null]},
// {"hang": 1}, {"speed": x}, {"stats": 1}, {"quit": 1}) and events out (ready, tick with the STEP edges of each 10 ms, reset, stats).
'use strict';

const fs = require('fs');
const net = require('net');
const { RP2040, USBCDC } = require('rp2040js');
const { ConsoleLogger, LogLevel } = require('rp2040js');

const CYCLE_NS = 8; // 125 MHz clk_sys
const FLASH_BASE = 0x10000000;
const SECTOR = 4096;
const TICK_REPORT_NS = 10e6; // a tick event every 10 ms of chip time
const BATCH_INSTR = 64; // instructions between timer/PIO updates (~0.6 us of chip time)
const SLICE_MS = 20; // wall time per event-loop turn before I/O is serviced
const STEP_PIN = 2;
const EN_PIN = 4; // active low (carrier.py)
const WD_REASON_TIMER = 1;
const WD_REASON_FORCE = 2;

function parseArgs(argv) {
  const a = { speed: 1, flashSize: 2 * 1024 * 1024, cause: 'PWRON' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (k === '--bootrom') { a.bootrom = v; i++; }
    else if (k === '--flash') { a.flash = v; i++; }
    else if (k === '--flash-size') { a.flashSize = parseInt(v, 10); i++; }
    else if (k === '--firmware') { a.firmware = v; i++; }
    else if (k === '--speed') { a.speed = parseFloat(v); i++; }
    else if (k === '--ctl-fd') { a.ctlFd = parseInt(v, 10); i++; }
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.bootrom || !a.flash) throw new Error('usage: runner.js --bootrom FILE --flash FILE [--firmware X.uf2|.bin]');
  return a;
}

const args = parseArgs(process.argv.slice(2));
const log = (msg) => process.stderr.write(`[epico] ${msg}\n`);

// ---- flash: a file-backed array, NOR semantics ---------------------------------------------------
let flash = new Uint8Array(args.flashSize).fill(0xff);
let flashFd;
if (fs.existsSync(args.flash)) {
  const data = fs.readFileSync(args.flash);
  flash.set(data.subarray(0, Math.min(data.length, flash.length)));
}
flashFd = fs.openSync(args.flash, fs.existsSync(args.flash) ? 'r+' : 'w+');
const dirtySectors = new Set();
if (fs.fstatSync(flashFd).size !== flash.length) {
  fs.writeSync(flashFd, flash, 0, flash.length, 0);
}

function loadFirmware(path) {
  // Like a UF2 drop on the BOOTSEL drive: only the blocks it carries are written, the rest of the
  // flash (the filesystem) stays.
  const data = fs.readFileSync(path);
  if (path.endsWith('.uf2')) {
    for (let off = 0; off + 512 <= data.length; off += 512) {
      const view = new DataView(data.buffer, data.byteOffset + off, 512);
      if (view.getUint32(0, true) !== 0x0a324655 || view.getUint32(4, true) !== 0x9e5d5157) continue;
      const addr = view.getUint32(12, true) - FLASH_BASE;
      const size = view.getUint32(16, true);
      flash.set(data.subarray(off + 32, off + 32 + size), addr);
      for (let s = addr - (addr % SECTOR); s < addr + size; s += SECTOR) dirtySectors.add(s / SECTOR);
    }
  } else {
    flash.set(data, 0);
    for (let s = 0; s < data.length; s += SECTOR) dirtySectors.add(s / SECTOR);
  }
  flushFlash();
}

function flushFlash() {
  for (const s of dirtySectors) {
    fs.writeSync(flashFd, flash, s * SECTOR, SECTOR, s * SECTOR);
  }
  dirtySectors.clear();
}

function flashErase(addr, count) {
  // flash_range_erase(addr, count, block_size, block_cmd): whole 4 KiB sectors to 0xFF
  const start = addr & ~(SECTOR - 1);
  const end = Math.min(flash.length, addr + count);
  for (let s = start; s < end; s += SECTOR) {
    flash.fill(0xff, s, s + SECTOR);
    dirtySectors.add(s / SECTOR);
  }
  stats.flashErasedBytes += end - start;
}

function flashProgram(chip, addr, src, count) {
  // flash_range_program(addr, data, count): programming can only clear bits (NOR): AND
  for (let i = 0; i < count && addr + i < flash.length; i++) {
    flash[addr + i] &= chip.readUint8(src + i);
    dirtySectors.add(((addr + i) / SECTOR) | 0);
  }
  stats.flashProgrammedBytes += count;
}

// ---- host link state ------------------------------------------------------------------------------
const fromHost = []; // byte chunks the host sent, not yet taken by the device
let fromHostBytes = 0;
let ctl = null;
const ctlOut = [];

function send(obj) {
  const line = JSON.stringify(obj) + '\n';
  if (ctl) ctl.write(line);
  else ctlOut.push(line);
}

const ext = {}; // externally driven pin levels: pin -> 0/1 (absent: floating, pulls apply)
const adcCodes = [0, 0, 0, 0, 0];

const stats = {
  resets: 0, flashErasedBytes: 0, flashProgrammedBytes: 0, stepEdges: 0, stepEdgesEnabled: 0,
  busyCycles: 0, chipNs: 0, wallMs: 0, bursts: [],
};

// ---- the chip ------------------------------------------------------------------------------------
const bootrom = new Uint32Array(fs.readFileSync(args.bootrom).buffer.slice(0));
let chip = null;
let cdc = null;
let pendingRead = null; // size of an armed OUT transfer waiting for host bytes
let resetPending = null;
let scratch = new Uint32Array(8);
let wdReason = 0;
let edgeAccum = { n: 0, all: 0 };
let lastStep = false;
let nextReportNs = TICK_REPORT_NS;
let pioCycles = [[0, 0, 0, 0], [0, 0, 0, 0]];
let bootNs = 0;

function romTable(rom8) {
  // Bootrom function table: pointer at 0x14, entries (code16, ptr16) up to a zero code.
  const u16 = (a) => rom8[a] | (rom8[a + 1] << 8);
  const table = {};
  let p = u16(0x14);
  for (;;) {
    const code = u16(p);
    if (!code) break;
    table[String.fromCharCode(code & 0xff, code >> 8)] = u16(p + 2);
    p += 4;
  }
  return table;
}

function makeChip() {
  const c = new RP2040();
  c.logger = new ConsoleLogger(LogLevel.Error);
  c.loadBootrom(bootrom);
  // The flash ROM calls become BKPTs handled here: erase/program on the array, the rest no-ops
  // (the emulator's XIP reads the array directly, so there is no mode to switch).
  const rom8 = new Uint8Array(c.bootrom.buffer);
  const table = romTable(rom8);
  const handlers = {};
  const patch = (name, id, fn) => {
    const addr = table[name] & ~1;
    rom8[addr] = id;
    rom8[addr + 1] = 0xbe; // BKPT #id
    handlers[id] = fn;
  };
  const nop = () => {};
  const r = c.core.registers;
  patch('IF', 1, nop); // connect_internal_flash
  patch('EX', 2, nop); // flash_exit_xip
  patch('RE', 3, () => flashErase(r[0] >>> 0, r[1] >>> 0));
  patch('RP', 4, () => flashProgram(c, r[0] >>> 0, r[1] >>> 0, r[2] >>> 0));
  patch('FC', 5, nop); // flash_flush_cache
  patch('CX', 6, nop); // flash_enter_cmd_xip
  c.onBreak = (id) => {
    const h = handlers[id];
    if (!h) { log(`breakpoint ${id} at ${(c.core.PC >>> 0).toString(16)}`); return; }
    h();
    c.core.PC = c.core.LR & ~1; // return to the caller
  };
  // XIP reads the chip's 16 MiB array: ours becomes a view of its start, so ROM writes land there.
  c.flash.set(flash);
  flash = c.flash.subarray(0, flash.length);
  return c;
}

function bootChip(cause) {
  chip = makeChip();
  const wd = chip.peripherals[0x40058];
  wd.scratchData.set(scratch);
  wd.reason = wdReason;
  wd.onWatchdogTrigger = () => {
    resetPending = wd.reason === WD_REASON_FORCE ? 'FORCE' : 'WDT';
    // A fired periodic alarm re-arms itself 0 ns ahead (its counter stays at 0): stop it; the chip
    // is rebuilt at the next turn of the loop anyway.
    wd.alarm.enable = false;
    wd.timer.enable = false;
  };
  // PIO: no timers; stepped by elapsed cycles in the main loop.
  for (const pio of chip.pio) {
    pio.run = function () {};
  }
  pioCycles = [[0, 0, 0, 0], [0, 0, 0, 0]];
  // ADC: channel codes set by the controller.
  chip.adc.channelValues = adcCodes;
  // GPIO: an input reads the pin's level: the driven output, an external drive, else the pull.
  chip.gpio.forEach((pin) => {
    pin.addListener(() => refreshPin(pin));
    refreshPin(pin);
  });
  lastStep = false;
  // USB CDC with OUT transfers completed only when the host has bytes.
  cdc = new USBCDC(chip.usbCtrl);
  pendingRead = null;
  const usb = chip.usbCtrl;
  usb.onEndpointRead = (endpoint, size) => {
    if (endpoint === cdc.outEndpoint) {
      pendingRead = size;
      feedDevice();
    }
  };
  cdc.onDeviceConnected = () => {
    send({ ev: 'usb', t_ns: chip.clock.nanos });
    feedDevice();
  };
  cdc.onSerialData = (buf) => process.stdout.write(Buffer.from(buf));
  chip.core.PC = 0x10000000; // boot2 at the start of flash, as the bootrom would
  bootNs = 0;
  nextReportNs = TICK_REPORT_NS;
  send({ ev: 'boot', cause });
}

function refreshPin(pin) {
  let level;
  if (pin.outputEnable) level = pin.outputValue;
  else if (ext[pin.index] !== undefined) level = !!ext[pin.index];
  else if (pin.pullupEnabled && !pin.pulldownEnabled) level = true;
  else if (pin.pulldownEnabled && !pin.pullupEnabled) level = false;
  else level = pin.rawInputValue; // floating or bus keeper: keeps its level
  if (level !== pin.rawInputValue) pin.setInputValue(level);
}

function feedDevice() {
  if (pendingRead === null || fromHostBytes === 0 || cdc.outEndpoint < 0) return;
  const n = Math.min(pendingRead, fromHostBytes);
  const buf = new Uint8Array(n);
  let i = 0;
  while (i < n) {
    const head = fromHost[0];
    const take = Math.min(head.length, n - i);
    buf.set(head.subarray(0, take), i);
    i += take;
    if (take === head.length) fromHost.shift();
    else fromHost[0] = head.subarray(take);
  }
  fromHostBytes -= n;
  pendingRead = null;
  chip.usbCtrl.endpointReadDone(cdc.outEndpoint, buf);
}

// ---- PIO stepping and STEP edges -----------------------------------------------------------------
function stepPio(cycles) {
  for (let p = 0; p < 2; p++) {
    const pio = chip.pio[p];
    if (pio.stopped) continue;
    for (let m = 0; m < 4; m++) {
      const sm = pio.machines[m];
      if (!sm.enabled) { pioCycles[p][m] = 0; continue; }
      const div = (sm.clockDivInt || 65536) + sm.clockDivFrac / 256;
      let acc = pioCycles[p][m] + cycles;
      while (acc >= div) {
        acc -= div;
        const before = pio.pinValues;
        sm.step();
        if (pio.pinValues !== before || pio.pinDirections !== pio.oldPinDirections) {
          pio.checkChangedPins();
          checkStep();
        }
      }
      pioCycles[p][m] = acc;
    }
  }
}

function checkStep() {
  const pin = chip.gpio[STEP_PIN];
  const level = pin.outputEnable && pin.outputValue;
  if (level && !lastStep) {
    edgeAccum.all++;
    stats.stepEdges++;
    const en = chip.gpio[EN_PIN];
    if (en.outputEnable && !en.outputValue) {
      edgeAccum.n++;
      stats.stepEdgesEnabled++;
    }
  }
  lastStep = level;
}

// ---- reset ---------------------------------------------------------------------------------------
function doReset(kind) {
  const wd = chip.peripherals[0x40058];
  scratch = new Uint32Array(wd.scratchData);
  wdReason = kind === 'FORCE' ? WD_REASON_FORCE : WD_REASON_TIMER;
  flushFlash();
  stats.resets++;
  send({ ev: 'reset', cause: kind === 'FORCE' ? 'FORCE' : 'WDT', t_ns: chip.clock.nanos });
  resetPending = null;
  hung = false;
  chipNsBase += chip.clock.nanos;
  bootChip(kind);
}

// ---- main loop: run no faster than wall time -----------------------------------------------------
let wall0 = process.hrtime.bigint();
let chipNsBase = 0; // chip time before the current chip (resets restart the chip's clock)
let lastFlush = Date.now();
let burstCycles = 0; // cycles executed since the core last waited
let burstMax = 0; // largest burst in the current 100 ms window
// Profile (on request): cycles by PC, of each window's largest burst and of all busy time.
let prof = null;
let profCur = []; // (pc, cycles) pairs of the burst running now
let profBest = []; // those of the window's largest burst so far
let windowNs = 100e6;
let stopped = false;
let hung = false; // the core stuck (a hung loop): clocks, PIO and the watchdog run on

function wallNs() {
  return Number(process.hrtime.bigint() - wall0) * args.speed;
}

function endBurst() {
  if (burstCycles > burstMax) {
    burstMax = burstCycles;
    if (prof) { const t = profBest; profBest = profCur; profCur = t; }
  }
  burstCycles = 0;
  if (prof) profCur.length = 0;
}

function profTrap(core) {
  // a call of the trapped function (gc_alloc): its size argument and the code addresses on the stack
  // (a heuristic backtrace), counted by that key
  const r = core.registers;
  const chain = [r[14] >>> 0];
  const sp = r[13] >>> 0;
  for (let a = sp; a < sp + 512 && chain.length < 12; a += 4) {
    const w = chip.readUint32(a) >>> 0;
    if ((w & 1) && w > 0x10000000 && w < 0x10080000) chain.push(w);
  }
  const key = (r[0] >>> 0) + ':' + chain.map((x) => x.toString(16)).join(',');
  prof.allocs.set(key, (prof.allocs.get(key) || 0) + 1);
}

function profAdd(map, pairs) {
  for (let i = 0; i < pairs.length; i += 2) map.set(pairs[i], (map.get(pairs[i]) || 0) + pairs[i + 1]);
}

function run() {
  if (stopped) return;
  const sliceEnd = Date.now() + SLICE_MS;
  const core = chip.core;
  const clock = chip.clock;
  let target = wallNs() - chipNsBase;
  while (clock.nanos < target) {
    if (resetPending) { doReset(resetPending); return setImmediate(run); }
    if (core.waiting || hung) {
      endBurst();
      const toAlarm = clock.nanosToNextAlarm;
      let jump = target - clock.nanos;
      if (toAlarm > 0 && toAlarm < jump) jump = toAlarm;
      if (jump < CYCLE_NS) jump = CYCLE_NS;
      const cycles = Math.round(jump / CYCLE_NS);
      stepPio(cycles);
      clock.tick(cycles * CYCLE_NS);
    } else {
      let cycles = 0;
      const pc = core.PC;
      if (prof && prof.trap) {
        for (let i = 0; i < BATCH_INSTR && !core.waiting; i++) {
          if (core.PC === prof.trap) profTrap(core);
          cycles += core.executeInstruction();
        }
      } else {
        for (let i = 0; i < BATCH_INSTR && !core.waiting; i++) {
          cycles += core.executeInstruction();
        }
      }
      if (prof) { profCur.push(pc, cycles); prof.all.set(pc, (prof.all.get(pc) || 0) + cycles); }
      stats.busyCycles += cycles;
      burstCycles += cycles;
      stepPio(cycles);
      clock.tick(cycles * CYCLE_NS);
    }
    if (clock.nanos >= nextReportNs) report();
    if (Date.now() >= sliceEnd) break;
  }
  if (dirtySectors.size && Date.now() - lastFlush > 200) {
    flushFlash();
    lastFlush = Date.now();
  }
  const ahead = (clock.nanos + chipNsBase - wallNs()) / 1e6;
  if (ahead > 1) setTimeout(run, Math.min(ahead, 20));
  else setImmediate(run);
}

function report() {
  const t = chip.clock.nanos;
  nextReportNs = t + TICK_REPORT_NS;
  if (t >= windowNs) {
    stats.bursts.push(burstMax);
    if (stats.bursts.length > 100000) stats.bursts.shift();
    if (prof) {
      profAdd(prof.worst, profBest);
      if (prof.big && burstMax >= prof.big) { // this window's largest burst by PC, and its chip ms
        const m = new Map();
        profAdd(m, profBest);
        prof.bigWindows.push([(t + chipNsBase) / 1e6, burstMax, [...m]]);
      }
      profBest = [];
    }
    burstMax = 0;
    windowNs = t + 100e6;
  }
  send({ ev: 'tick', t_ns: t + chipNsBase, steps: edgeAccum.n, edges: edgeAccum.all });
  edgeAccum = { n: 0, all: 0 };
}

function statsReply() {
  const wallMs = Number(process.hrtime.bigint() - wall0) / 1e6;
  const chipNs = chip.clock.nanos + chipNsBase;
  return {
    ev: 'stats', chip_ms: chipNs / 1e6, wall_ms: wallMs, busy_cycles: stats.busyCycles,
    resets: stats.resets, step_edges: stats.stepEdges, step_edges_enabled: stats.stepEdgesEnabled,
    flash_erased_bytes: stats.flashErasedBytes, flash_programmed_bytes: stats.flashProgrammedBytes,
    bursts: stats.bursts.slice(), pin_levels: chip.gpio.map((p) => (p.inputValue ? 1 : 0)),
    profile: prof && { worst: [...prof.worst], all: [...prof.all], allocs: [...prof.allocs], big: prof.bigWindows },
  };
}

function command(msg) {
  if (msg.adc) {
    const [ch, code] = msg.adc;
    adcCodes[ch] = Math.max(0, Math.min(4095, code | 0));
  }
  if (msg.pin) {
    const [n, level] = msg.pin;
    if (level === null) delete ext[n];
    else ext[n] = level ? 1 : 0;
    refreshPin(chip.gpio[n]);
  }
  if (msg.hang) hung = true;
  if (msg.speed > 0) { // a new cap on chip time per wall time, from the chip time reached now
    const cur = chip.clock.nanos + chipNsBase;
    args.speed = msg.speed;
    wall0 = process.hrtime.bigint() - BigInt(Math.round(cur / args.speed));
  }
  if (msg.stats) send(statsReply());
  if (msg.profile !== undefined) { // start (or restart) a profile; 0 stops it
    prof = msg.profile ? { worst: new Map(), all: new Map(), allocs: new Map(), trap: msg.trap || 0,
      big: msg.big || 0, bigWindows: [] } : null;
    profCur = []; profBest = [];
  }
  if (msg.clear_bursts) stats.bursts = [];
  if (msg.quit) shutdown();
}

function shutdown() {
  if (stopped) return;
  stopped = true;
  flushFlash();
  fs.closeSync(flashFd);
  process.exit(0);
}

// ---- wiring --------------------------------------------------------------------------------------
if (args.firmware) loadFirmware(args.firmware);
bootChip(args.cause);

process.stdin.on('data', (data) => {
  fromHost.push(new Uint8Array(data));
  fromHostBytes += data.length;
  feedDevice();
});
process.stdin.on('end', shutdown);
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

if (args.ctlFd !== undefined) {
  ctl = new net.Socket({ fd: args.ctlFd, readable: true, writable: true });
  let buf = '';
  ctl.on('data', (d) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim()) command(JSON.parse(line));
    }
  });
  ctl.on('end', shutdown);
  ctl.on('error', () => shutdown());
  for (const line of ctlOut.splice(0)) ctl.write(line);
}

wall0 = process.hrtime.bigint();
run();
