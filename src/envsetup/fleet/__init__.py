"""Many machines: node profiles → groups of identical machines → a report and a Plan per group.

envsetup makes the profiles (``doctor --json`` on each node), the report and the plans; the
engines a fleet already runs (Ansible, Slurm's ``srun``, Kubernetes Jobs) carry them. There is
no daemon and no server of envsetup's own. ``nodes`` reads, ``group`` groups, ``report`` builds
the report (findings and plans per group), ``render`` and ``html`` show it, ``ansible`` runs the
playbook shipped beside them (``playbook.yml``).
"""
