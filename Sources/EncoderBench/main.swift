// The encoder benchmark, our side: tokens/s of BertModel.forward for given shapes, plus the
// machine's sgemm rate measured through the same BLAS, so the forward's effective GFLOP/s can be
// read as a share of what the matrix products alone reach. scripts/bench-encoder.sh runs it beside
// PyTorch (scripts/bench_encoder_peer.py) and prints the ratios.
//
//   EncoderBench (--model DIR | --preset NAME) [--threads N] [--shapes 1x16,8x128] [--seconds S] [--json]
//   EncoderBench --gemm [--threads N]      (GemmCompare.swift: our packed product beside BLAS)
import Bert
import BertCompute
import Foundation

if CommandLine.arguments.contains("--gemm") {
    var threads = Compute.threads
    if let i = CommandLine.arguments.firstIndex(of: "--threads"), i + 1 < CommandLine.arguments.count,
        let n = Int(CommandLine.arguments[i + 1]), n > 0
    {
        threads = n
    }
    compareGemm(threads: threads)
    exit(0)
}

struct Options {
    var model: String?
    var preset: String?
    var threads = Compute.threads
    var shapes = [(1, 16), (1, 128), (8, 128), (32, 128), (8, 512)]
    var seconds = 3.0
    var minRepeat = 3
    var json = false
    var precision = Precision.fp32
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("EncoderBench: " + message + "\n").utf8))
    exit(2)
}

func parseOptions() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst().makeIterator()
    func value(_ flag: String) -> String {
        guard let v = args.next() else { fail("\(flag) needs a value") }
        return v
    }
    while let a = args.next() {
        switch a {
        case "--model": o.model = value(a)
        case "--preset": o.preset = value(a)
        case "--threads":
            guard let n = Int(value(a)), n > 0 else { fail("--threads needs a positive integer") }
            o.threads = n
        case "--seconds":
            guard let x = Double(value(a)), x >= 0 else { fail("--seconds needs a number") }
            o.seconds = x
        case "--min-repeat":
            guard let n = Int(value(a)), n > 0 else { fail("--min-repeat needs a positive integer") }
            o.minRepeat = n
        case "--json": o.json = true
        case "--precision":
            guard let p = Precision(rawValue: value(a)) else { fail("--precision is fp32, bf16 or int8") }
            o.precision = p
        case "--no-pack": break  // read above
        case "--shapes":
            o.shapes = value(a).split(separator: ",").map { s in
                let p = s.split(separator: "x").compactMap { Int($0) }
                guard p.count == 2, p[0] > 0, p[1] > 0 else { fail("bad shape '\(s)' (expected BxS, e.g. 8x128)") }
                return (p[0], p[1])
            }
        default: fail("unknown argument \(a)")
        }
    }
    if (o.model == nil) == (o.preset == nil) { fail("give exactly one of --model DIR, --preset NAME") }
    return o
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Best and median seconds of `body` over repeats filling `budget` seconds (at least `minRepeat`).
func time(budget: Double, minRepeat: Int, _ body: () throws -> Void) rethrows -> (
    best: Double, median: Double, repeats: Int
) {
    try body()  // warm-up: workspace allocation, page faults
    try body()
    var times: [Double] = []
    let start = now()
    while times.count < minRepeat || now() - start < budget {
        let t0 = now()
        try body()
        times.append(now() - t0)
    }
    times.sort()
    return (times[0], times[times.count / 2], times.count)
}

let options = parseOptions()
Compute.threads = options.threads
let model: BertModel
do {
    if let dir = options.model {
        model = try BertModel(folder: URL(fileURLWithPath: dir))
    } else {
        model = try BertModel(config: try BertConfig.preset(options.preset!))
        model.initializeWeights(seed: 0)
    }
} catch {
    fail("\(error)")
}
// As `bert embed` runs it: weights packed once for inference (--no-pack: BLAS packs them per call).
if !CommandLine.arguments.contains("--no-pack") { model.prepareForInference(precision: options.precision) }
let c = model.config

// The machine's sgemm rate on this model's largest product (the feed-forward), 8x128 tokens,
// through the same BLAS and threads; measured before and after the forwards, the best kept (the
// machine may be shared, and a slow moment would flatter the share).
func measureSgemmRate() -> Double {
    let m = 1024, k = c.hiddenSize, n = c.intermediateSize
    let a = FloatBuffer(count: m * k), b = FloatBuffer(count: n * k), out = FloatBuffer(count: m * n)
    for i in 0..<a.count { a.pointer[i] = Float(i % 7) * 0.01 }
    for i in 0..<b.count { b.pointer[i] = Float(i % 5) * 0.01 }
    let r = time(budget: min(options.seconds, 2), minRepeat: 5) {
        BLAS.parallelSgemm(
            transB: true, m: m, n: n, k: k, a: a.pointer, lda: k, b: b.pointer, ldb: k, c: out.pointer, ldc: n)
    }
    return 2 * Double(m * n * k) / r.best / 1e9
}
var sgemmRate = measureSgemmRate()

/// Multiply-adds of one forward (matrix products only, as usual): projections, attention, feed-forward, pooler.
func forwardFlops(batch: Int, seq: Int) -> Double {
    let t = Double(batch * seq), h = Double(c.hiddenSize), i = Double(c.intermediateSize)
    let perLayer =
        2 * t * h * (3 * h) + 2 * t * h * h + 2 * 2 * t * h * i + 2 * 2 * Double(batch) * Double(seq * seq) * h
    return Double(c.numHiddenLayers) * perLayer + 2 * Double(batch) * h * h
}

var results: [[String: Any]] = []
var rng = SeededRandom(seed: 1)
for (b, s) in options.shapes {
    guard s <= c.maxPositionEmbeddings else { fail("shape \(b)x\(s) is longer than max_position_embeddings") }
    let ids = (0..<(b * s)).map { _ in Int32(1000 + Int(rng.next() % UInt64(max(1, min(c.vocabSize, 29000) - 1000)))) }
    let batch = EncoderBatch(batchSize: b, sequenceLength: s, inputIds: ids)
    let r = try time(budget: options.seconds, minRepeat: options.minRepeat) { _ = try model.forward(batch) }
    let gflops = forwardFlops(batch: b, seq: s) / r.best / 1e9
    results.append([
        "shape": "\(b)x\(s)", "batch": b, "seq": s, "best_s": r.best, "median_s": r.median,
        "repeats": r.repeats, "tokens_per_s": Double(b * s) / r.best, "gflops": gflops,
        "sgemm_share": gflops / sgemmRate,
    ])
}
sgemmRate = max(sgemmRate, measureSgemmRate())
for i in results.indices { results[i]["sgemm_share"] = (results[i]["gflops"] as! Double) / sgemmRate }
if !options.json {
    for r in results {
        print(
            String(
                format: "%-8@ best %8.2f ms  median %8.2f ms  %9.0f tokens/s  %6.1f GFLOP/s (%.0f%% of sgemm)",
                (r["shape"] as! String) as NSString, (r["best_s"] as! Double) * 1e3, (r["median_s"] as! Double) * 1e3,
                r["tokens_per_s"] as! Double, r["gflops"] as! Double, 100 * (r["sgemm_share"] as! Double)))
    }
}
if options.json {
    let object: [String: Any] = [
        "threads": options.threads, "sgemm_gflops": sgemmRate,
        "model": options.model ?? "preset " + options.preset!,
        "hidden": c.hiddenSize, "layers": c.numHiddenLayers, "results": results,
        "precision": options.precision.rawValue, "weight_bytes": model.weightBytes,
    ]
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: data, as: UTF8.self))
} else {
    print(String(format: "sgemm %.1f GFLOP/s on %d threads", sgemmRate, options.threads))
    print(
        String(format: "weights in memory: %.1f MB (%@)", Double(model.weightBytes) / 1e6, options.precision.rawValue))
}
