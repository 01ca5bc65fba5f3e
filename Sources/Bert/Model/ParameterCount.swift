import Foundation

/// Parameter counts grouped by component, from a config (the layout transformers would build) or
/// from a checkpoint's tensors (what the file really holds).
public struct ParameterBreakdown: Sendable, Equatable {
    /// One row of the breakdown: a component and its counts.
    public struct Entry: Sendable, Equatable {
        /// The component's name, e.g. "embeddings.word_embeddings" or
        /// "encoder.layer.*.output.LayerNorm".
        public var component: String
        /// Parameters in the component (over all layers when per-layer).
        public var count: Int
        /// How many tensors were counted, and in how many layers when per-layer.
        public var tensors: Int
    }
    /// Per-layer components are summed over all layers; `layers` says how many there were.
    public var entries: [Entry] = []
    /// Encoder layers found among the tensors (0 when none).
    public var layers = 0
    /// Parameters over all entries.
    public var total: Int { entries.reduce(0) { $0 + $1.count } }

    /// An empty breakdown.
    public init() {}

    /// Counts tensors by name: `bert.` prefixes are ignored; per-layer tensors are summed into
    /// components such as "attention.self (query, key, value)".
    public init<S: Sequence>(tensors: S) where S.Element == (name: String, count: Int) {
        var order: [String] = []
        var sums: [String: (Int, Int)] = [:]
        var layerSet = Set<Int>()
        for (rawName, count) in tensors {
            var name = rawName
            if name.hasPrefix("bert.") { name.removeFirst(5) }
            if name.hasSuffix("position_ids") { continue }  // an integer buffer, not a parameter
            let (component, layer) = Self.component(of: name)
            if let layer { layerSet.insert(layer) }
            if sums[component] == nil { order.append(component) }
            let s = sums[component] ?? (0, 0)
            sums[component] = (s.0 + count, s.1 + 1)
        }
        entries = order.map { Entry(component: $0, count: sums[$0]!.0, tensors: sums[$0]!.1) }
        layers = layerSet.count
    }

    /// The tensors of a parameter layout.
    public init(layout: ParameterLayout) {
        self.init(tensors: layout.tensors.map { (name: $0.name, count: $0.count) })
    }

    /// The BertModel of `config` (with its pooler unless told otherwise).
    public init(config: BertConfig, pooler: Bool = true) {
        var layout = ParameterLayout()
        _ = BertModelWeights(&layout, config: config, addPoolingLayer: pooler)
        self.init(layout: layout)
    }

    /// The floating-point tensors of a safetensors file (F32, F16, BF16, F64); integer
    /// tensors are not parameters.
    public init(file: SafeTensorsFile) {
        self.init(
            tensors: file.tensors.filter { t in
                // An int8 matrix (bert quantize) counts; its per-row scales are not parameters.
                if t.dtype == .I8 { return file.info(t.name + "_scale") != nil }
                if t.name.hasSuffix("_scale"), file.info(String(t.name.dropLast(6)))?.dtype == .I8 { return false }
                return [.F32, .F16, .BF16, .F64].contains(t.dtype)
            }
            .map { (name: $0.name, count: $0.elementCount) })
    }

    static func component(of name: String) -> (String, Int?) {
        if name.hasPrefix("embeddings.") {
            let part = name.dropFirst("embeddings.".count).split(separator: ".").first.map(String.init) ?? name
            return ("embeddings." + part, nil)
        }
        if name.hasPrefix("encoder.layer.") {
            let rest = name.dropFirst("encoder.layer.".count)
            let digits = rest.prefix(while: { $0.isNumber })
            let layer = Int(digits)
            let tail = rest.dropFirst(digits.count + 1)
            let component: String
            if tail.hasPrefix("attention.self.") {
                component = "attention.self (query, key, value)"
            } else if tail.hasPrefix("attention.output.dense") {
                component = "attention.output.dense"
            } else if tail.hasPrefix("attention.output.LayerNorm") {
                component = "attention.output.LayerNorm"
            } else if tail.hasPrefix("intermediate.dense") {
                component = "intermediate.dense (feed-forward in)"
            } else if tail.hasPrefix("output.dense") {
                component = "output.dense (feed-forward out)"
            } else if tail.hasPrefix("output.LayerNorm") {
                component = "output.LayerNorm"
            } else {
                component = String(tail)
            }
            return ("encoder.layer.*." + component, layer)
        }
        if name.hasPrefix("pooler.") { return ("pooler", nil) }
        if name.hasPrefix("cls.predictions.") {
            return ("masked-LM head (cls.predictions; decoder tied to word embeddings)", nil)
        }
        if name.hasPrefix("cls.seq_relationship") { return ("next-sentence head (cls.seq_relationship)", nil) }
        let head = name.split(separator: ".").first.map(String.init) ?? name
        return ("head: " + head, nil)
    }

    /// A table for people: component, count, share.
    public func table() -> String {
        func fmt(_ n: Int) -> String {
            let s = String(n)
            var out = ""
            for (i, ch) in s.reversed().enumerated() {
                if i > 0 && i % 3 == 0 { out.append(",") }
                out.append(ch)
            }
            return String(out.reversed())
        }
        let width = max(40, (entries.map(\.component.count).max() ?? 0) + 2)
        var lines: [String] = []
        func line(_ name: String, _ n: Int, _ note: String = "") {
            let pad = String(repeating: " ", count: max(1, width - name.count))
            let num = fmt(n)
            lines.append(name + pad + String(repeating: " ", count: max(0, 14 - num.count)) + num + note)
        }
        for e in entries {
            let perLayer =
                e.component.hasPrefix("encoder.layer.*") && layers > 0
                ? "   (\(fmt(e.count / layers)) per layer × \(layers))" : ""
            line(e.component, e.count, perLayer)
        }
        lines.append(String(repeating: "-", count: width + 14))
        line("total", total, String(format: "   (%.1fM)", Double(total) / 1e6))
        return lines.joined(separator: "\n")
    }
}
