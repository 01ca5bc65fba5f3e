// The pretraining benchmark, our side: training tokens/s of one full BertForPreTraining step
// (forward and backward with dropout, global-norm clipping, AdamW with the warm-up schedule), the
// step `bert pretrain` takes. scripts/bench-pretrain.sh runs it beside PyTorch + transformers
// (scripts/bench_pretrain_peer.py, same config, batch and threads) and prints the ratios.
//
//   PretrainBench --preset NAME [--vocab-size N] [--threads N] [--shapes 32x128] [--seconds S]
//                 [--masked N] [--json]
//
// The batch: random ids in [1000, vocab), full rows (no padding), segment A the first half and B
// the second, `--masked` positions per row (default 15% up to 20, as the data builder) replaced by
// [MASK] and labelled, next-sentence labels alternating.
import Bert
import BertCompute
import Foundation

struct Options {
    var preset = "mini"
    var vocabSize: Int?
    var threads = Compute.threads
    var shapes = [(32, 128)]
    var seconds = 10.0
    var minRepeat = 3
    var masked: Int?
    var json = false
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("PretrainBench: " + message + "\n").utf8))
    exit(2)
}

func parseOptions() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst().makeIterator()
    func value(_ flag: String) -> String {
        guard let v = args.next() else { fail("\(flag) needs a value") }
        return v
    }
    func positive(_ flag: String) -> Int {
        guard let n = Int(value(flag)), n > 0 else { fail("\(flag) needs a positive integer") }
        return n
    }
    while let a = args.next() {
        switch a {
        case "--preset": o.preset = value(a)
        case "--vocab-size": o.vocabSize = positive(a)
        case "--threads": o.threads = positive(a)
        case "--masked": o.masked = positive(a)
        case "--min-repeat": o.minRepeat = positive(a)
        case "--seconds":
            guard let x = Double(value(a)), x >= 0 else { fail("--seconds needs a number") }
            o.seconds = x
        case "--json": o.json = true
        case "--shapes":
            o.shapes = value(a).split(separator: ",").map { s in
                let p = s.split(separator: "x").compactMap { Int($0) }
                guard p.count == 2, p[0] > 0, p[1] > 1 else { fail("bad shape '\(s)' (expected BxS, e.g. 32x128)") }
                return (p[0], p[1])
            }
        default: fail("unknown argument \(a)")
        }
    }
    return o
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

let options = parseOptions()
Compute.threads = options.threads
var config: BertConfig
do { config = try BertConfig.preset(options.preset) } catch { fail("\(error)") }
if let v = options.vocabSize { config.vocabSize = v }
let model: BertForPreTraining
do { model = try BertForPreTraining(config: config) } catch { fail("\(error)") }
model.initializeWeights(seed: 0)
// The training step every trainer uses (zero, dropout, clipping, schedule, AdamW).
let trainer = try! TrainingStep(
    parameters: model.parameters, config: config,
    optimizer: AdamW(layout: model.parameters.layout),
    schedule: LinearWarmupSchedule(warmupSteps: 10, totalSteps: 1_000_000),
    peakLearningRate: 1e-4, maxGradNorm: 1.0, seed: 0)

var results: [[String: Any]] = []
var rng = SeededRandom(seed: 1)
for (b, s) in options.shapes {
    guard s <= config.maxPositionEmbeddings else { fail("shape \(b)x\(s) is longer than max_position_embeddings") }
    let masked = min(options.masked ?? min(20, max(1, Int((Double(s) * 0.15).rounded()))), s - 2)
    var ids = [Int32](), types = [Int32](), labels = [Int32](repeating: -100, count: b * s)
    for row in 0..<b {
        for j in 0..<s {
            ids.append(Int32(1000 + Int(rng.next() % UInt64(config.vocabSize - 1000))))
            types.append(j < s / 2 ? 0 : 1)
        }
        ids[row * s] = 101
        ids[row * s + s - 1] = 102
        // Masked positions spread evenly over the row, away from [CLS] and the last [SEP].
        for k in 0..<masked {
            let j = 1 + k * (s - 2) / masked
            labels[row * s + j] = ids[row * s + j]
            ids[row * s + j] = 103
        }
    }
    let batch = PretrainingBatch(
        inputs: EncoderBatch(batchSize: b, sequenceLength: s, inputIds: ids, tokenTypeIds: types),
        mlmLabels: labels, nspLabels: (0..<b).map { Int32($0 % 2) })
    var step = 0
    func trainStep() throws {
        try trainer.run(step: step) { _, grads, dropout in
            try model.lossAndGradients(batch, into: grads, dropout: dropout).total
        }
        step += 1
    }
    do {
        try trainStep(); try trainStep()  // warm-up: allocation, page faults
        var times: [Double] = []
        let start = now()
        while times.count < options.minRepeat || now() - start < options.seconds {
            let t0 = now()
            try trainStep()
            times.append(now() - t0)
        }
        times.sort()
        results.append([
            "shape": "\(b)x\(s)", "batch": b, "seq": s, "masked_per_row": masked,
            "best_s": times[0], "median_s": times[times.count / 2], "repeats": times.count,
            "tokens_per_s": Double(b * s) / times[0],
        ])
    } catch {
        fail("\(error)")
    }
}
if options.json {
    let object: [String: Any] = [
        "threads": options.threads, "preset": options.preset, "vocab_size": config.vocabSize,
        "hidden": config.hiddenSize, "layers": config.numHiddenLayers, "results": results,
    ]
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: data, as: UTF8.self))
} else {
    for r in results {
        print(
            String(
                format: "%-8@ best %8.1f ms  median %8.1f ms  %8.0f training tokens/s",
                (r["shape"] as! String) as NSString, (r["best_s"] as! Double) * 1e3,
                (r["median_s"] as! Double) * 1e3, r["tokens_per_s"] as! Double))
    }
}
