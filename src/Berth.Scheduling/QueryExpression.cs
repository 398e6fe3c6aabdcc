namespace Berth.Scheduling;

/// <summary>
/// The subset of ECS's cluster query language Berth understands: terms
/// <c>attribute:NAME == VALUE</c>, <c>attribute:NAME != VALUE</c>, <c>attribute:NAME exists</c>,
/// joined by <c>and</c>.
/// </summary>
public sealed class QueryExpression
{
    // Parsed once per request; Matches runs once per candidate, so it only compares strings.
    private readonly (string Name, Operator Op, string? Value)[] _terms;

    private enum Operator
    {
        Equal,
        NotEqual,
        Exists,
    }

    private QueryExpression((string, Operator, string?)[] terms) => _terms = terms;

    public static bool TryParse(string text, out QueryExpression? expression, out string? error)
    {
        expression = null;
        error = null;
        var terms = new List<(string, Operator, string?)>();
        foreach (var raw in System.Text.RegularExpressions.Regex.Split(text, @"\s+and\s+", System.Text.RegularExpressions.RegexOptions.IgnoreCase))
        {
            var part = raw.Trim();
            Operator op;
            int at;
            if ((at = part.IndexOf("==", StringComparison.Ordinal)) > 0)
            {
                op = Operator.Equal;
            }
            else if ((at = part.IndexOf("!=", StringComparison.Ordinal)) > 0)
            {
                op = Operator.NotEqual;
            }
            else if (part.EndsWith(" exists", StringComparison.OrdinalIgnoreCase))
            {
                op = Operator.Exists;
                at = part.Length - " exists".Length;
            }
            else
            {
                error = $"Unsupported expression '{part}': use attribute:NAME == VALUE, attribute:NAME != VALUE or attribute:NAME exists.";
                return false;
            }
            var lhs = part[..at].Trim();
            if (!lhs.StartsWith("attribute:", StringComparison.Ordinal) || lhs.Length == "attribute:".Length)
            {
                error = $"Unsupported expression '{part}': the left side must be attribute:NAME.";
                return false;
            }
            var value = op == Operator.Exists ? null : part[(at + 2)..].Trim().Trim('\'', '"');
            terms.Add((lhs["attribute:".Length..], op, value));
        }
        expression = new QueryExpression([.. terms]);
        return true;
    }

    public static QueryExpression Parse(string text)
        => TryParse(text, out var e, out var error) ? e! : throw new FormatException(error);

    public bool Matches(IReadOnlyDictionary<string, string> attributes)
    {
        foreach (var (name, op, value) in _terms)
        {
            var has = attributes.TryGetValue(name, out var actual);
            var ok = op switch
            {
                Operator.Equal => has && actual == value,
                Operator.NotEqual => !has || actual != value,
                _ => has,
            };
            if (!ok)
            {
                return false;
            }
        }
        return true;
    }
}
