//! Built-in tools: `add` (seed 000), `calculator` and `time`.

use std::sync::Arc;

use futures::{FutureExt, future::BoxFuture};
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolSpec};
use crate::clock::{SharedClock, rfc3339};

pub fn all(clock: SharedClock) -> Vec<Arc<dyn Tool>> {
    vec![Arc::new(Add), Arc::new(Calculator), Arc::new(Time(clock))]
}

/// `add(a, b)`: the seed-000 tool. Integers stay integers.
pub struct Add;

impl Tool for Add {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "add".into(),
            description: "Add two numbers".into(),
            parameters: json!({
                "type": "object",
                "properties": { "a": { "type": "number" }, "b": { "type": "number" } },
                "required": ["a", "b"]
            })
            .into(),
        }
    }

    fn call<'a>(
        &'a self,
        arguments: Value,
        _: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Value, String>> {
        async move {
            let (a, b) = (&arguments["a"], &arguments["b"]);
            match (a.as_i64(), b.as_i64()) {
                (Some(x), Some(y)) => x
                    .checked_add(y)
                    .map(Value::from)
                    .ok_or_else(|| "integer overflow".to_string()),
                _ => match (a.as_f64(), b.as_f64()) {
                    (Some(x), Some(y)) => Ok(json!(x + y)),
                    _ => Err("add needs two numbers, a and b".into()),
                },
            }
        }
        .boxed()
    }
}

/// `calculator(expression)`: + - * / and parentheses over decimal numbers.
pub struct Calculator;

impl Tool for Calculator {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "calculator".into(),
            description: "Evaluate an arithmetic expression with + - * / and parentheses".into(),
            parameters: json!({
                "type": "object",
                "properties": { "expression": { "type": "string", "description": "for example (2 + 3) * 4" } },
                "required": ["expression"]
            }).into(),
        }
    }

    fn call<'a>(
        &'a self,
        arguments: Value,
        _: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Value, String>> {
        async move {
            let expression = arguments["expression"]
                .as_str()
                .ok_or("calculator needs an expression")?;
            let value = evaluate(expression)?;
            if value.fract() == 0.0 && value.abs() < 9.0e15 {
                Ok(json!(value as i64))
            } else {
                Ok(json!(value))
            }
        }
        .boxed()
    }
}

/// `time()`: the current UTC time.
pub struct Time(SharedClock);

impl Tool for Time {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "time".into(),
            description: "The current date and time (UTC, RFC 3339)".into(),
            parameters: json!({ "type": "object", "properties": {} }).into(),
        }
    }

    fn call<'a>(&'a self, _: Value, _: &'a ToolContext) -> BoxFuture<'a, Result<Value, String>> {
        let now = rfc3339(self.0.now_ms());
        async move { Ok(json!(now)) }.boxed()
    }
}

/// Recursive descent over `expr := term (('+'|'-') term)*`, `term := factor (('*'|'/') factor)*`,
/// `factor := number | '(' expr ')' | '-' factor`. Bounded input and depth.
pub fn evaluate(text: &str) -> Result<f64, String> {
    if text.len() > 1000 {
        return Err("expression too long".into());
    }
    let tokens: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let value = p.expr()?;
    if p.pos != p.tokens.len() {
        return Err(format!(
            "unexpected {:?} at position {}",
            p.tokens[p.pos],
            p.pos + 1
        ));
    }
    if !value.is_finite() {
        return Err("the result is not a finite number (division by zero?)".into());
    }
    Ok(value)
}

struct Parser {
    tokens: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.tokens.get(self.pos).copied()
    }

    fn expr(&mut self) -> Result<f64, String> {
        let mut value = self.term()?;
        while let Some(op @ ('+' | '-')) = self.peek() {
            self.pos += 1;
            let rhs = self.term()?;
            value = if op == '+' { value + rhs } else { value - rhs };
        }
        Ok(value)
    }

    fn term(&mut self) -> Result<f64, String> {
        let mut value = self.factor()?;
        while let Some(op @ ('*' | '/')) = self.peek() {
            self.pos += 1;
            let rhs = self.factor()?;
            value = if op == '*' { value * rhs } else { value / rhs };
        }
        Ok(value)
    }

    fn factor(&mut self) -> Result<f64, String> {
        self.depth += 1;
        if self.depth > 64 {
            return Err("expression nested too deeply".into());
        }
        let result = match self.peek() {
            Some('-') => {
                self.pos += 1;
                self.factor().map(|v| -v)
            }
            Some('(') => {
                self.pos += 1;
                let v = self.expr()?;
                if self.peek() != Some(')') {
                    return Err("missing )".into());
                }
                self.pos += 1;
                Ok(v)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => {
                let start = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.') {
                    self.pos += 1;
                }
                let text: String = self.tokens[start..self.pos].iter().collect();
                text.parse::<f64>()
                    .map_err(|_| format!("bad number {text:?}"))
            }
            Some(c) => Err(format!("unexpected {c:?}")),
            None => Err("unexpected end of expression".into()),
        };
        self.depth -= 1;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calculator_respects_precedence_and_parentheses() {
        assert_eq!(evaluate("2 + 3 * 4").unwrap(), 14.0);
        assert_eq!(evaluate("(2 + 3) * 4").unwrap(), 20.0);
        assert_eq!(evaluate("-3 + 10 / 4").unwrap(), -0.5);
        assert!(evaluate("1 / 0").is_err());
        assert!(evaluate("2 +").is_err());
        assert!(evaluate("2 ^ 3").is_err());
        assert!(evaluate(&"(".repeat(100)).is_err());
    }

    #[tokio::test]
    async fn add_keeps_integers_and_refuses_non_numbers() {
        let ctx = ToolContext {
            user_id: "u".into(),
            session_id: "s".into(),
            conversation_id: None,
        };
        assert_eq!(
            Add.call(json!({"a": 5, "b": 3}), &ctx).await.unwrap(),
            json!(8)
        );
        assert_eq!(
            Add.call(json!({"a": 1.5, "b": 2}), &ctx).await.unwrap(),
            json!(3.5)
        );
        assert!(Add.call(json!({"a": "5"}), &ctx).await.is_err());
    }
}
