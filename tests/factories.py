import factory

from accounts.models import User
from vaults.models import ResourceGroup, Vault


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda number: f"user{number}")
    display_name = factory.Faker("name")
    password = factory.django.Password("correct horse battery staple")


class SuperuserFactory(UserFactory):
    is_superuser = True
    is_staff = True


class SystemPrincipalFactory(UserFactory):
    username = factory.Sequence(lambda number: f"system:{number}")
    kind = User.Kind.SYSTEM


class ApplicationFactory(UserFactory):
    username = factory.Sequence(lambda number: f"app{number}")
    kind = User.Kind.APPLICATION


class ResourceGroupFactory(factory.django.DjangoModelFactory[ResourceGroup]):
    class Meta:
        model = ResourceGroup

    name = factory.Sequence(lambda number: f"rg-{number}")
    location = "westeurope"


class VaultFactory(factory.django.DjangoModelFactory[Vault]):
    class Meta:
        model = Vault

    name = factory.Sequence(lambda number: f"vault-{number}")
    resource_group = factory.SubFactory(ResourceGroupFactory)
    location = factory.SelfAttribute("resource_group.location")
