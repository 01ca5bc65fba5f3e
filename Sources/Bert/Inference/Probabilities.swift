import Foundation

// Probabilities and losses of one row of logits, in Double, for predictions and evaluation. (The
// training losses are Kernels.crossEntropy and Kernels.meanSquaredError, which also leave the
// gradient in place of the logits.)

/// Probabilities from logits (a numerically stable softmax, in Double).
public func softmax<C: Collection>(_ logits: C) -> [Double] where C.Element == Float {
    guard let m = logits.max() else { return [] }
    let e = logits.map { exp(Double($0) - Double(m)) }
    let sum = e.reduce(0, +)
    return e.map { $0 / sum }
}

/// −log softmax(logits)[label], as log Σ exp(x − max) + max − x[label]: stable for any logits.
public func crossEntropy<C: Collection>(_ logits: C, label: C.Index) -> Double where C.Element == Float {
    guard let m = logits.max() else { return .nan }
    let sum = logits.reduce(0.0) { $0 + exp(Double($1) - Double(m)) }
    return log(sum) + Double(m) - Double(logits[label])
}

/// The indices of the k largest values, largest first (ties: lower index first): the top
/// tokens of a masked-LM row.
public func topIndices(_ values: [Float], _ k: Int) -> [Int] {
    guard k > 0 else { return [] }
    var best: [Int] = []
    for i in values.indices {
        if best.count == k, values[i] <= values[best[k - 1]] { continue }
        var j = best.count
        while j > 0 && values[best[j - 1]] < values[i] { j -= 1 }
        best.insert(i, at: j)
        if best.count > k { best.removeLast() }
    }
    return best
}
