"""A small reader of our Dockerfile: stages and their instructions (continuations joined,
comments dropped, ARG defaults substituted in FROM), enough to replay the build stage's
COPY and RUN steps on this machine, in a folder standing for the image's root."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str  # upper case
    arguments: str

    def exec_form(self) -> list[str]:
        """ENTRYPOINT/CMD: the JSON array form (the shell form is not used here)."""
        value = json.loads(self.arguments)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), self
        return value

    def words(self) -> list[str]:
        return shlex.split(self.arguments)


@dataclass(slots=True)
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.image}: no {keyword}"
        return found[-1]

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """ENV of the stage in order (`KEY=VALUE ...`, ${VAR} expanded like the builder)."""
        env = dict(base or {})
        for instruction in self.all("ENV"):
            for word in instruction.words():
                key, _, value = word.partition("=")
                env[key] = expand(value, env)
        return env


def expand(text: str, variables: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: variables.get(m.group(1) or m.group(2), ""), text)


def instructions(path: Path) -> list[Instruction]:
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, f"{path}: ends inside a continued line"
    found = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        found.append(Instruction(keyword.upper(), " ".join(arguments.split())))
    return found


def stages(path: Path) -> list[Stage]:
    args: dict[str, str] = {}
    result: list[Stage] = []
    for instruction in instructions(path):
        if instruction.keyword == "ARG" and not result:
            variable, _, default = instruction.arguments.partition("=")
            args[variable] = default
        elif instruction.keyword == "FROM":
            words = instruction.arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append(Stage(expand(words[0], args), name))
        else:
            assert result, f"{path}: {instruction.keyword} before FROM"
            result[-1].instructions.append(instruction)
    return result


def rooted(text: str, root: Path) -> str:
    """Absolute paths in a command, moved under `root` (the image's / on this machine)."""
    return re.sub(r"(?<![\w.~$:/-])/(?=[\w.])", f"{root}/", text)
