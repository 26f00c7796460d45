"""Who is acting, as the domain sees it: a subject and whether they may see everything."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    subject: str
    is_supervisor: bool = False

    def may_see(self, owner: str) -> bool:
        """Operators see their own cases; supervisors see all."""
        return self.is_supervisor or owner == self.subject
