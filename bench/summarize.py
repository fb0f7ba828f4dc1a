#!/usr/bin/python3
"""Summarises bench/run.sh's raw results (KEY k=v ... lines) into a Markdown table.

    summarize.py RESULTS.txt "COMMAND"            -> Markdown on stdout
    summarize.py --splice docs/BENCHMARKS.md SUMMARY.md
        replaces the text between <!-- results:begin --> and <!-- results:end -->
"""
import statistics
import sys


def parse(path):
    rows = []
    for line in open(path):
        parts = line.split()
        if not parts or not parts[0].isupper():
            continue
        kv = {}
        for p in parts[1:]:
            if '=' in p:
                k, v = p.split('=', 1)
                try:
                    kv[k] = float(v)
                except ValueError:
                    kv[k] = v
        rows.append((parts[0], kv, line.rstrip('\n')))
    return rows


def med(xs):
    return statistics.median(xs) if xs else float('nan')


def group(rows, key, by):
    """{(mode, int(kv[by])): [kv, ...]} of the rows whose first word is `key`."""
    out = {}
    for k, kv, _ in rows:
        if k == key:
            out.setdefault((kv['mode'], int(kv[by])), []).append(kv)
    return out


def verdict(ok):
    return 'PASS' if ok else 'MISS'


def summarize(path, command):
    rows = parse(path)
    out = []
    w = out.append
    machine = []
    with open(path) as f:
        for line in f:
            if line.startswith('machine:'):
                machine = [line.strip()]
    load = {k: l.split(' ', 1)[1] for k, _, l in rows if k in ('LOAD_START', 'LOAD_END')}
    w('Command: `%s`  ' % command)
    w('%s  ' % (machine[0] if machine else 'machine: ?'))
    w('Load average (1/5/15 min) at start: %s, at end: %s' %
      (load.get('LOAD_START', '?'), load.get('LOAD_END', '?')))
    w('')

    # ---- closed loop
    res = group(rows, 'RESULT', 'c')
    if res:
        reps = max(len(v) for v in res.values())
        w('### 1-2. Cached Lookup and Verify vs the Health/Check floor')
        w('')
        w('Medians of %d interleaved repetitions (health, lookup, verify in turn). "ratio" = '
          'median throughput / median floor throughput; "paired" = median of the per-repetition '
          'ratios. Client and server CPU in cores (the machine has 2); "server CPU µs/RPC" = poshd CPU '
          'time per answered RPC (less sensitive to the machine\'s other load than req/s), "vs '
          'floor" = that cost over the floor\'s.' % reps)
        w('')
        w('| RPC | callers | req/s | ratio | paired | p50 µs | p99 µs | client CPU | server CPU | server CPU µs/RPC | vs floor |')
        w('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
        for mode in ('health', 'lookup', 'verify'):
            for c in (1, 16, 64):
                v = res.get((mode, c))
                if not v:
                    continue
                floor = res.get(('health', c), [])
                rps = med([x['rps'] for x in v])
                ratio = rps / med([x['rps'] for x in floor]) if floor else float('nan')
                paired = med([a['rps'] / b['rps'] for a, b in zip(v, floor) if b['rps'] > 0])
                cost = med([x['server_cores'] * 1e6 / x['rps'] for x in v if x['rps'] > 0])
                fcost = med([x['server_cores'] * 1e6 / x['rps'] for x in floor if x['rps'] > 0])
                w('| %s | %d | %.0f | %.2f | %.2f | %.0f | %.0f | %.2f | %.2f | %.1f | %.2f |' % (
                    mode, c, rps, ratio, paired, med([x['p50_us'] for x in v]),
                    med([x['p99_us'] for x in v]), med([x['client_cores'] for x in v]),
                    med([x['server_cores'] for x in v]), cost, cost / fcost if fcost else float('nan')))
        bad = sum(x.get('bad', 0) + x.get('rpc_errors', 0)
                  for g in (res, group(rows, 'SWEEP', 'channels')) for v in g.values() for x in v)
        w('')
        w('Unexpected answers or RPC errors: %d.' % bad)
        w('')

    # ---- connections sweep at 16 callers
    sweep = group(rows, 'SWEEP', 'channels')
    if sweep:
        w('### 1b. Tail latency at 16 callers vs the connections they share')
        w('')
        w('The same closed loop at 16 callers, spread over 1-16 connections (the table above '
          'uses one connection per caller). Medians of %d interleaved repetitions.' %
          max(len(v) for v in sweep.values()))
        w('')
        w('| connections | health req/s | health p50 µs | health p99 µs | lookup req/s | lookup / floor | lookup p50 µs | lookup p99 µs |')
        w('|---:|---:|---:|---:|---:|---:|---:|---:|')
        for ch in sorted({c for _, c in sweep}):
            h, l = sweep.get(('health', ch), []), sweep.get(('lookup', ch), [])
            if not h or not l:
                continue
            hr, lr = med([x['rps'] for x in h]), med([x['rps'] for x in l])
            w('| %d | %.0f | %.0f | %.0f | %.0f | %.2f | %.0f | %.0f |' % (
                ch, hr, med([x['p50_us'] for x in h]), med([x['p99_us'] for x in h]), lr, lr / hr,
                med([x['p50_us'] for x in l]), med([x['p99_us'] for x in l])))
        w('')

    # ---- targets
    targets = []
    def ratio_at(mode, c):
        v, f = res.get((mode, c)), res.get(('health', c))
        if not v or not f:
            return float('nan')
        return med([x['rps'] for x in v]) / med([x['rps'] for x in f])
    if res:
        r = ratio_at('lookup', 16)
        targets.append(('Cached Lookup throughput at 16 / floor', '≥ 0.90×', '%.2f×' % r, r >= 0.9))
        p99 = med([x['p99_us'] for x in res.get(('lookup', 16), [])])
        fp99 = med([x['p99_us'] for x in res.get(('health', 16), [])])
        targets.append(('Cached Lookup p99 at 16', '< 1 ms', '%.0f µs (floor: %.0f µs)' % (p99, fp99),
                        p99 < 1000))
        r = ratio_at('verify', 16)
        targets.append(('Cached Verify throughput at 16 / floor', '≥ 0.70×', '%.2f×' % r, r >= 0.7))

    # ---- cold
    curls = [kv for k, kv, _ in rows if k == 'CURL']
    bursts = [kv for k, kv, _ in rows if k == 'BURST']
    if curls:
        w('### 3. Cold retrievals (distinct uncached domains) vs curl --parallel --parallel-max 100')
        w('')
        w('| domains | round | curl wall ms | poshd wall ms | poshd / curl | poshd fetches | found | first answer ms | p50 answer ms | poshd CPU s | client CPU s |')
        w('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
        by_n = {}
        for i, (c, b) in enumerate(zip(curls, bursts)):
            n = int(c['n'])
            by_n.setdefault(n, []).append((c, b))
            w('| %d | %d | %.0f | %.0f | %.2f | %d | %d | %.0f | %.0f | %.2f | %.2f |' % (
                n, len(by_n[n]), c['wall_ms'], b['wall_ms'], b['wall_ms'] / c['wall_ms'],
                b.get('fetches', -1), b['found'], b['first_ms'], b['p50_ms'],
                b.get('server_cpu_s', 0), b.get('client_cpu_s', 0)))
        w('')
        for n, pairs in sorted(by_n.items()):
            cw = med([c['wall_ms'] for c, _ in pairs])
            pw = med([b['wall_ms'] for _, b in pairs])
            fetch_ok = all(int(b.get('fetches', -1)) == n and int(b['found']) == n for _, b in pairs)
            w('%d domains: median curl %.0f ms, median poshd %.0f ms, ratio %.2f; fetches == domains '
              'and all found: %s.' % (n, cw, pw, pw / cw, 'yes' if fetch_ok else 'NO'))
            targets.append(('Cold %d domains: poshd wall / curl wall' % n,
                            '≤ 1.0×' if n == 1000 else '(report)', '%.2f×' % (pw / cw),
                            (pw / cw <= 1.0 and fetch_ok) if n == 1000 else fetch_ok))
        w('')

    # ---- coalescing
    co = [kv for k, kv, _ in rows if k == 'COALESCE']
    if co:
        c = co[0]
        resp_ms = (c['origin_resp_epoch'] * 1000) - c['t0_epoch_ms']
        req_ms = (c['origin_req_epoch'] * 1000) - c['t0_epoch_ms']
        after = c['last_ms'] - resp_ms
        w('### 4. Coalescing: 1 000 concurrent Lookups of one slow uncached domain')
        w('')
        w('| callers | fetches | coalesced | origin requests | origin got the request at | origin answered at | first answer | last answer | last answer − origin answer |')
        w('|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
        w('| %d | %d | %d | %d | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %.1f ms |' % (
            c['n'], c['fetches'], c['coalesced'], c['origin_requests'], req_ms, resp_ms,
            c['first_ms'], c['last_ms'], after))
        w('')
        w('Times are from the moment the client started sending the 1 000 Lookups.')
        w('')
        targets.append(('Coalescing: fetches for 1 000 callers', '= 1', '%d' % c['fetches'],
                        int(c['fetches']) == 1 and int(c['origin_requests']) == 1))
        targets.append(('Coalescing: last answer after the origin answered', '(report)',
                        '%.1f ms' % after, True))

    # ---- cached answers during a cold storm
    st_idle = [kv for k, kv, _ in rows if k == 'STORM' and kv.get('kind') == 'idle']
    st_storm = [kv for k, kv, _ in rows if k == 'STORM' and kv.get('kind') == 'storm']
    st_burst = [kv for k, kv, _ in rows if k == 'STORMBURST']
    if st_idle and st_storm:
        w('### 7. Cached Lookup at 16 callers: idle vs during a storm of cold domains')
        w('')
        w('Repetitions alternate: 16 callers looking up one cached domain for the window alone '
          '(idle), then the same while a burst of distinct uncached domains is retrieved '
          '(storm; the burst starts 0.5 s before the window and outlasts it).')
        w('')
        w('| rep | idle rps | idle p50 µs | idle p99 µs | storm rps | storm p50 µs | storm p99 µs | storm domains | storm wall ms | storm found |')
        w('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
        for i, (a, b) in enumerate(zip(st_idle, st_storm)):
            bu = st_burst[i] if i < len(st_burst) else {}
            w('| %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %d | %.0f | %d |' % (
                i + 1, a['rps'], a['p50_us'], a['p99_us'], b['rps'], b['p50_us'], b['p99_us'],
                bu.get('n', 0), bu.get('wall_ms', 0), bu.get('found', 0)))
        w('')
        ir, sr = med([x['rps'] for x in st_idle]), med([x['rps'] for x in st_storm])
        ip, sp = med([x['p99_us'] for x in st_idle]), med([x['p99_us'] for x in st_storm])
        sw = med([x['wall_ms'] for x in st_burst]) if st_burst else float('nan')
        w('Medians: throughput storm/idle %.2f×, p99 storm/idle %.2f×; storm wall %.0f ms.' % (
            sr / ir, sp / ip, sw))
        w('')
        targets.append(('Cached Lookup during a cold storm: throughput / idle', '≥ 0.70×',
                        '%.2f×' % (sr / ir), sr / ir >= 0.7))
        targets.append(('Cached Lookup during a cold storm: p99 / idle', '≤ 2×',
                        '%.2f×' % (sp / ip), sp / ip <= 2.0))
        targets.append(('Storm of %d cold domains: wall' % (st_burst[0]['n'] if st_burst else 0),
                        '(report)', '%.0f ms' % sw,
                        all(int(x['found']) == int(x['n']) for x in st_burst)))

    # ---- delegation fan-in
    fan = [kv for k, kv, _ in rows if k == 'FANIN']
    if fan:
        w('### 8. Delegation fan-in: domains whose documents reference one hosting provider\'s document')
        w('')
        w('| round | domains | fetches of the shared target (origin log) | HTTP requests sent | reference_shared | found | wall ms |')
        w('|---:|---:|---:|---:|---:|---:|---:|')
        for f in fan:
            w('| %d | %d | %d | %d | %d | %d | %.0f |' % (
                f['round'], f['domains'], f['target_fetches'], f['fetches'],
                f['reference_shared'], f['found'], f['wall_ms']))
        w('')
        w('Round 2 looks up other delegating domains while the target is still fresh.')
        w('')
        first = fan[0]
        targets.append(('Fan-in: fetches of the target for %d delegating domains' % first['domains'],
                        '= 1', '%d' % first['target_fetches'],
                        int(first['target_fetches']) == 1 and int(first['found']) == int(first['domains'])))

    # ---- memory / restart (poshd started with an empty state dir / a make_snapshot file)
    rs = [kv for k, kv, _ in rows if k == 'RESTART']
    shut = [kv for k, kv, _ in rows if k == 'SHUTDOWN']
    snapf = [kv for k, kv, _ in rows if k == 'SNAPSHOT']
    store = [kv for k, kv, _ in rows if k == 'STORE_MEMORY']
    empty = [x for x in rs if x['kind'] == 'empty']
    snap = [x for x in rs if x['kind'] == 'snapshot']
    if empty and snap:
        e_rss = med([x['rss_kib'] for x in empty])
        s_rss = med([x['rss_kib'] for x in snap])
        n = med([x['entries'] for x in snap])
        per = (s_rss - e_rss) * 1024 / max(1, n)
        e_ms = med([x['ms'] for x in empty])
        s_ms = med([x['ms'] for x in snap])
        w('### 5-6. Memory per cached entry and restart')
        w('')
        w('| measurement (median of %d starts each) | value |' % len(snap))
        w('|---|---:|')
        if snapf:
            w('| snapshot (bench/make_snapshot): entries / file size | %d / %.1f MiB |' % (
                snapf[0]['entries'], snapf[0]['bytes'] / 1048576))
        w('| VmRSS, idle poshd, empty state dir | %.1f MiB |' % (e_rss / 1024))
        w('| VmRSS, poshd with the %d-entry snapshot loaded | %.1f MiB |' % (n, s_rss / 1024))
        w('| **per entry** (full - empty) / %d | **%.0f bytes** |' % (n, per))
        w('| start-to-ready (exec to first `poshctl --json stats`), empty state dir | %.0f ms |' % e_ms)
        w('| start-to-ready with the %d-entry snapshot | **%.0f ms** |' % (n, s_ms))
        if store:
            st = store[0]
            w('| in process (make_snapshot --measure): heap per entry after Store::Put / after Store::Load | %.0f B / %.0f B |' % (
                st['put_heap_bytes_per_entry'], st['load_heap_bytes_per_entry']))
            w('| in process: Store::Load of the file | %.0f ms |' % st['load_ms'])
        if shut:
            w('| shutdown incl. writing the snapshot | %.0f ms (%.1f MiB file) |' % (
                shut[0]['ms'], shut[0]['snapshot_bytes'] / 1048576))
        w('')
        w('Per-start values: ' + ', '.join('%s %.0f ms / %.1f MiB' % (x['kind'], x['ms'], x['rss_kib'] / 1024)
                                          for x in rs) + '.')
        w('')
        targets.append(('Memory per entry at %d entries (snapshot load)' % n,
                        '≤ 1024 B', '%.0f B' % per, per <= 1024))
        targets.append(('Start-to-ready with the %d-entry snapshot' % n, '< 1 s', '%.0f ms' % s_ms,
                        s_ms < 1000))

    l2 = [kv for k, kv, _ in rows if k == 'L2']
    if l2:
        w('### 9. Second tier: cold lookups answered from Redis vs fetched from the origin')
        w('')
        w('Daemon A fetches distinct uncached domains from the origin (nginx on loopback: the '
          'cheapest origin there is) and writes them to Redis; daemon B, with its own empty cache '
          'and the same Redis, then looks up the same domains. `seq`: one lookup at a time '
          '(per-lookup latency); `burst`: all at once.')
        w('')
        w('| loop niceness | rep | shape | domains | origin: fetches | origin: p50 ms | origin: p99 ms | origin: wall ms '
          '| Redis: fetches | Redis: l2_hits | Redis: p50 ms | Redis: p99 ms | Redis: wall ms | '
          'p50 Redis / origin | wall Redis / origin |')
        w('|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
        ratios = {'seq': [], 'burst': []}
        walls = {'seq': [], 'burst': []}
        bad = {'seq': False, 'burst': False}
        for o in [x for x in l2 if x['kind'] == 'origin']:
            r = [x for x in l2 if x['kind'] == 'redis' and x['shape'] == o['shape']
                 and x['rep'] == o['rep'] and x.get('nice') == o.get('nice')]
            if not r:
                continue
            r = r[0]
            lat = r['lat_p50_ms'] / max(1e-9, o['lat_p50_ms'])
            wall = r['wall_ms'] / max(1e-9, o['wall_ms'])
            ratios[o['shape']].append(lat)
            walls[o['shape']].append(wall)
            bad[o['shape']] = (bad[o['shape']] or r['fetches'] != 0 or r['l2_hits'] != r['n']
                               or r['found'] != r['n'])
            w('| %s | %d | %s | %d | %d | %.2f | %.2f | %.0f | %d | %d | %.2f | %.2f | %.0f | %.2f× | %.2f× |' % (
                '%d' % o['nice'] if 'nice' in o else '?', o['rep'], o['shape'], o['n'], o['fetches'], o['lat_p50_ms'], o['lat_p99_ms'],
                o['wall_ms'], r['fetches'], r['l2_hits'], r['lat_p50_ms'], r['lat_p99_ms'],
                r['wall_ms'], lat, wall))
        w('')
        if ratios['seq']:
            targets.append(('Cold lookup from Redis / from the origin: median latency (one at a time)',
                            '< 1×', '%.2f×' % med(ratios['seq']), med(ratios['seq']) < 1 and not bad['seq']))
        if walls['burst']:
            targets.append(('Cold burst from Redis / from the origin: wall',
                            '< 1×', '%.2f×' % med(walls['burst']), med(walls['burst']) < 1))
        for shape in ('seq', 'burst'):
            rows_b = [x for x in l2 if x['kind'] == 'redis' and x['shape'] == shape]
            if rows_b:
                targets.append(('Second daemon (%s): fetches for domains already in Redis' % shape,
                                '= 0', '%d of %d' % (sum(x['fetches'] for x in rows_b),
                                                     sum(x['n'] for x in rows_b)),
                                all(x['fetches'] == 0 for x in rows_b)))

    micro = [kv for k, kv, _ in rows if k == 'MICRO']
    if micro:
        w('### Micro-benchmarks (in process; median of 3)')
        w('')
        w('| benchmark | real ns | CPU ns |')
        w('|---|---:|---:|')
        for m in micro:
            w('| %s | %.0f | %.0f |' % (str(m['name']).replace('_median', ''), m['real_ns'], m['cpu_ns']))
        w('')

    head = ['### Targets', '', '| target | goal | measured | |', '|---|---|---:|---|']
    for name, goal, got, ok in targets:
        head.append('| %s | %s | %s | %s |' % (name, goal, got, verdict(ok)))
    head.append('')
    return '\n'.join(out[:4] + head + out[4:]) + '\n'


def splice(doc, summary):
    text = open(doc).read()
    begin, end = '<!-- results:begin -->', '<!-- results:end -->'
    new = open(summary).read()
    if begin in text and end in text:
        a = text.index(begin) + len(begin)
        b = text.index(end)
        text = text[:a] + '\n' + new + text[b:]
    else:
        text += '\n' + begin + '\n' + new + end + '\n'
    open(doc, 'w').write(text)


if __name__ == '__main__':
    if sys.argv[1] == '--splice':
        splice(sys.argv[2], sys.argv[3])
    else:
        print(summarize(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else 'bench/run.sh'), end='')
