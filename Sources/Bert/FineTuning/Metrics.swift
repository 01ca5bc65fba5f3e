import Foundation

/// Evaluation metrics as scikit-learn and scipy define them (the GLUE metrics).
public enum Metrics {
    /// Share of predictions equal to the gold labels, in 0...1; NaN without examples.
    public static func accuracy(_ predicted: [Int], _ gold: [Int]) -> Double {
        guard !gold.isEmpty else { return .nan }
        return Double(zip(predicted, gold).filter { $0 == $1 }.count) / Double(gold.count)
    }

    /// F1 of class `positive` (binary F1), 0 when it is never predicted nor present.
    public static func f1(_ predicted: [Int], _ gold: [Int], positive: Int) -> Double {
        var tp = 0, fp = 0, fn = 0
        for (p, g) in zip(predicted, gold) {
            if p == positive && g == positive {
                tp += 1
            } else if p == positive {
                fp += 1
            } else if g == positive {
                fn += 1
            }
        }
        return tp == 0 ? 0 : 2 * Double(tp) / Double(2 * tp + fp + fn)
    }

    /// The unweighted mean of every class's F1 (sklearn's average="macro").
    public static func macroF1(_ predicted: [Int], _ gold: [Int], classes: Int) -> Double {
        guard classes > 0 else { return .nan }
        return (0..<classes).map { f1(predicted, gold, positive: $0) }.reduce(0, +) / Double(classes)
    }

    /// Matthews correlation coefficient, multiclass form (sklearn's matthews_corrcoef); 0 when undefined.
    public static func matthews(_ predicted: [Int], _ gold: [Int], classes: Int) -> Double {
        var confusion = [[Double]](repeating: [Double](repeating: 0, count: classes), count: classes)
        for (p, g) in zip(predicted, gold) where p < classes && g < classes { confusion[g][p] += 1 }
        let s = Double(gold.count)
        let c = (0..<classes).reduce(0.0) { $0 + confusion[$1][$1] }
        let t = (0..<classes).map { k in confusion[k].reduce(0, +) }  // gold counts
        let p = (0..<classes).map { k in confusion.reduce(0.0) { $0 + $1[k] } }  // predicted counts
        let tp = zip(t, p).reduce(0.0) { $0 + $1.0 * $1.1 }
        let denominator = ((s * s - p.reduce(0) { $0 + $1 * $1 }) * (s * s - t.reduce(0) { $0 + $1 * $1 })).squareRoot()
        return denominator == 0 ? 0 : (c * s - tp) / denominator
    }

    /// Pearson's correlation coefficient (scipy's pearsonr); NaN when the lengths differ, there are
    /// fewer than 2 values or either series is constant.
    public static func pearson(_ x: [Double], _ y: [Double]) -> Double {
        let n = Double(x.count)
        guard x.count == y.count, x.count > 1 else { return .nan }
        let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for (a, b) in zip(x, y) { sxy += (a - mx) * (b - my); sxx += (a - mx) * (a - mx); syy += (b - my) * (b - my) }
        return sxx == 0 || syy == 0 ? .nan : sxy / (sxx * syy).squareRoot()
    }

    /// Spearman's rank correlation: Pearson on ranks, ties given their average rank.
    public static func spearman(_ x: [Double], _ y: [Double]) -> Double { pearson(ranks(x), ranks(y)) }

    static func ranks(_ v: [Double]) -> [Double] {
        let order = v.indices.sorted { v[$0] < v[$1] }
        var r = [Double](repeating: 0, count: v.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && v[order[j + 1]] == v[order[i]] { j += 1 }
            let average = Double(i + j) / 2 + 1
            for k in i...j { r[order[k]] = average }
            i = j + 1
        }
        return r
    }
}
